-- The built-in verifier role (SQLite version 8, PostgreSQL version 6), for services
-- that verify keygate tokens themselves, and its privilege for the administrator,
-- which holds every privilege. The text reads alike in both dialects. A store not yet
-- bootstrapped has no portal row: the bootstrap creates both instead.
INSERT INTO roles (name, description)
SELECT 'verifier', 'For services that verify keygate tokens themselves: follows the token index (digests, owners, privileges; never a secret) and has LMv1 signatures checked'
WHERE EXISTS (SELECT 1 FROM portal)
  AND NOT EXISTS (SELECT 1 FROM roles WHERE lower(name) = 'verifier');

INSERT INTO role_privileges (role_id, position, object_type, object_id, operation)
SELECT r.id, 0, 'setting', 'tokenindex', 'read' FROM roles r
WHERE lower(r.name) = 'verifier'
  AND r.description LIKE 'For services that verify keygate tokens themselves:%'
  AND NOT EXISTS (SELECT 1 FROM role_privileges p WHERE p.role_id = r.id);

INSERT INTO role_privileges (role_id, position, object_type, object_id, operation)
SELECT r.id, (SELECT COALESCE(MAX(p.position), -1) + 1 FROM role_privileges p WHERE p.role_id = r.id),
       'setting', 'tokenindex', 'read'
FROM roles r
WHERE lower(r.name) = 'administrator'
  AND NOT EXISTS (SELECT 1 FROM role_privileges p WHERE p.role_id = r.id AND p.object_type = 'setting' AND p.object_id = 'tokenindex');
