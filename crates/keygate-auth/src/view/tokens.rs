//! Token rows in memory, kept small: a million of them sit beside the index on every
//! node, so a row is 72 bytes plus its share of a B-tree and of its owner's id list,
//! and only what is rare
//! (a note, an LMv1 access id, an address in a form other than the canonical one)
//! costs an allocation of its own.
//!
//! - A bearer token's access id is its mask: 7 characters, stars, 4 characters. The
//!   row keeps the 11 characters and the number of stars.
//! - The last client address is kept as an `IpAddr` when it prints back exactly as
//!   stored.
//! - Creators' usernames are interned: a deployment has few of them.
//!
//! Every row is turned back into exactly the [`ApiToken`] it was made from (tested).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use keygate_core::model::{ApiToken, EpochSeconds, TokenId, TokenStatus, TokenType, UserId};
use keygate_core::token::{MASK_HEAD, MASK_TAIL};
use keygate_store::Usage;

/// What a row keeps out of line: only tokens that have one of these pay for it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Rare {
    note: Box<str>,
    /// An access id that is not a mask (LMv1 tokens).
    access_id: Option<Box<str>>,
    /// A last address that does not print back as stored.
    last_auth_ip: Option<Box<str>>,
}

/// One token, compact (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    user_id: UserId,
    created_on: EpochSeconds,
    last_used_on: EpochSeconds,
    /// A mask's first and last characters; unused when `rare.access_id` is set.
    mask_ends: [u8; MASK_HEAD + MASK_TAIL],
    mask_stars: u16,
    ip: Option<IpAddr>,
    created_by: u32,
    kind: TokenType,
    status: TokenStatus,
    rare: Option<Box<Rare>>,
}

/// The token rows in id order, and each owner's token ids in order (a sorted vector
/// per owner: 8 bytes a token, where a set of pairs takes 18).
#[derive(Debug, Default)]
pub(crate) struct TokenRows {
    rows: BTreeMap<TokenId, Row>,
    by_owner: BTreeMap<UserId, Vec<TokenId>>,
    names: Vec<Arc<str>>,
    name_ids: HashMap<Arc<str>, u32>,
}

/// A full load in progress: each token is made compact as it is read, so the full
/// rows never accumulate (a million of them would leave the allocator's heap grown by
/// hundreds of megabytes after they are freed).
#[derive(Debug, Default)]
pub(crate) struct Loading {
    rows: TokenRows,
    compact: Vec<(TokenId, Row)>,
}

impl Loading {
    /// Adds one token as read.
    pub(crate) fn add(&mut self, t: ApiToken) {
        let id = t.id;
        let row = self.rows.compact(t);
        self.compact.push((id, row));
    }

    /// The rows, with both B-trees built in bulk from sorted input (full nodes).
    pub(crate) fn finish(self) -> TokenRows {
        let Self {
            mut rows,
            mut compact,
        } = self;
        compact.sort_unstable_by_key(|(id, _)| *id);
        for (id, r) in &compact {
            rows.by_owner.entry(r.user_id).or_default().push(*id);
        }
        rows.by_owner.values_mut().for_each(Vec::shrink_to_fit);
        rows.rows = compact.into_iter().collect();
        rows
    }
}

/// The ends and star count of a mask, if `s` is one (else `None`: keep it as text).
fn as_mask(s: &str) -> Option<([u8; MASK_HEAD + MASK_TAIL], u16)> {
    let b = s.as_bytes();
    let stars = b.len().checked_sub(MASK_HEAD + MASK_TAIL)?;
    let middle = b.get(MASK_HEAD..MASK_HEAD + stars)?;
    if stars == 0 || !middle.iter().all(|&c| c == b'*') || !s.is_ascii() {
        return None;
    }
    let mut ends = [0u8; MASK_HEAD + MASK_TAIL];
    ends[..MASK_HEAD].copy_from_slice(&b[..MASK_HEAD]);
    ends[MASK_HEAD..].copy_from_slice(&b[MASK_HEAD + stars..]);
    Some((ends, u16::try_from(stars).ok()?))
}

/// The address, if `s` prints back exactly from it.
fn as_ip(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.parse().ok()?;
    (ip.to_string() == s).then_some(ip)
}

impl TokenRows {
    fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.name_ids.insert(name, id);
        id
    }

    fn compact(&mut self, t: ApiToken) -> Row {
        let mut rare = Rare {
            note: t.note.into_boxed_str(),
            ..Rare::default()
        };
        let (mask_ends, mask_stars) = match as_mask(&t.access_id) {
            Some(m) => m,
            None => {
                rare.access_id = Some(t.access_id.into_boxed_str());
                ([0; MASK_HEAD + MASK_TAIL], 0)
            }
        };
        let ip = if t.last_auth_ip.is_empty() {
            None
        } else {
            let ip = as_ip(&t.last_auth_ip);
            if ip.is_none() {
                rare.last_auth_ip = Some(t.last_auth_ip.into_boxed_str());
            }
            ip
        };
        Row {
            user_id: t.user_id,
            created_on: t.created_on,
            last_used_on: t.last_used_on,
            mask_ends,
            mask_stars,
            ip,
            created_by: self.name_id(&t.created_by),
            kind: t.token_type,
            status: t.status,
            rare: (rare != Rare::default()).then(|| Box::new(rare)),
        }
    }

    fn expand(&self, id: TokenId, r: &Row) -> ApiToken {
        let rare = r.rare.as_deref();
        let access_id = match rare.and_then(|x| x.access_id.as_deref()) {
            Some(a) => a.to_owned(),
            None => {
                let mut s =
                    String::with_capacity(MASK_HEAD + MASK_TAIL + usize::from(r.mask_stars));
                s.extend(r.mask_ends[..MASK_HEAD].iter().map(|&c| char::from(c)));
                s.extend(std::iter::repeat_n('*', usize::from(r.mask_stars)));
                s.extend(r.mask_ends[MASK_HEAD..].iter().map(|&c| char::from(c)));
                s
            }
        };
        let last_auth_ip = match (r.ip, rare.and_then(|x| x.last_auth_ip.as_deref())) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(text)) => text.to_owned(),
            (None, None) => String::new(),
        };
        ApiToken {
            id,
            user_id: r.user_id,
            token_type: r.kind,
            access_id,
            note: rare.map(|x| x.note.to_string()).unwrap_or_default(),
            status: r.status,
            created_on: r.created_on,
            created_by: self
                .names
                .get(r.created_by as usize)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            last_used_on: r.last_used_on,
            last_auth_ip,
        }
    }

    /// Rows from tokens read in any order (a full load; see [`Loading`]).
    #[cfg(test)]
    pub(crate) fn from_tokens(tokens: Vec<ApiToken>) -> Self {
        let mut loading = Loading::default();
        tokens.into_iter().for_each(|t| loading.add(t));
        loading.finish()
    }

    /// Inserts, replaces (`Some`) or removes (`None`) one token's row.
    pub(crate) fn put(&mut self, id: TokenId, token: Option<ApiToken>) {
        if let Some(old) = self.rows.remove(&id)
            && let Some(ids) = self.by_owner.get_mut(&old.user_id)
        {
            if let Ok(at) = ids.binary_search(&id) {
                ids.remove(at);
            }
            if ids.is_empty() {
                self.by_owner.remove(&old.user_id);
            }
        }
        if let Some(t) = token {
            let row = self.compact(t);
            let ids = self.by_owner.entry(row.user_id).or_default();
            if let Err(at) = ids.binary_search(&id) {
                ids.insert(at, id);
            }
            self.rows.insert(id, row);
        }
    }

    /// One token.
    pub(crate) fn get(&self, id: TokenId) -> Option<ApiToken> {
        self.rows.get(&id).map(|r| self.expand(id, r))
    }

    /// Applies last-use records (a newer use is never replaced by an older one).
    pub(crate) fn record_usage(&mut self, batch: &[Usage]) {
        for u in batch {
            let Some(row) = self.rows.get_mut(&u.token_id) else {
                continue;
            };
            if u.at < row.last_used_on {
                continue;
            }
            row.last_used_on = u.at;
            row.ip = as_ip(&u.ip);
            let text =
                (row.ip.is_none() && !u.ip.is_empty()).then(|| u.ip.clone().into_boxed_str());
            match (&mut row.rare, text) {
                (Some(rare), text) => rare.last_auth_ip = text,
                (None, Some(text)) => {
                    row.rare = Some(Box::new(Rare {
                        last_auth_ip: Some(text),
                        ..Rare::default()
                    }));
                }
                (None, None) => {}
            }
        }
    }

    /// The ids of the tokens in scope (`owner`, `kind`), in id order or its reverse.
    fn ids<'a>(
        &'a self,
        owner: Option<UserId>,
        kind: Option<TokenType>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = TokenId> + 'a> {
        let ids: Box<dyn DoubleEndedIterator<Item = TokenId> + 'a> = match owner {
            Some(o) => Box::new(self.by_owner.get(&o).into_iter().flatten().copied()),
            None => Box::new(self.rows.keys().copied()),
        };
        let ids: Box<dyn Iterator<Item = TokenId> + 'a> =
            if descending { Box::new(ids.rev()) } else { ids };
        match kind {
            None => ids,
            Some(k) => {
                Box::new(ids.filter(move |id| self.rows.get(id).is_some_and(|r| r.kind == k)))
            }
        }
    }

    /// How many tokens `page` covers, and its tokens. Without a type to check, counting
    /// takes no row lookups: all tokens is the map's length, one owner's the length of
    /// its id list.
    pub(crate) fn page(&self, owner: Option<UserId>, page: &super::Page) -> (usize, Vec<ApiToken>) {
        let total = match (owner, page.kind) {
            (None, None) => self.rows.len(),
            (Some(o), None) => self.by_owner.get(&o).map_or(0, Vec::len),
            (_, kind) => self.ids(owner, kind, false).count(),
        };
        let tokens = self
            .ids(owner, page.kind, page.descending)
            .skip(page.offset)
            .take(page.size)
            .filter_map(|id| self.get(id))
            .collect();
        (total, tokens)
    }

    /// Every token in scope, in id order.
    pub(crate) fn all(&self, owner: Option<UserId>, kind: Option<TokenType>) -> Vec<ApiToken> {
        self.ids(owner, kind, false)
            .filter_map(|id| self.get(id))
            .collect()
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: TokenId, user_id: UserId, access_id: &str, note: &str, ip: &str) -> ApiToken {
        ApiToken {
            id,
            user_id,
            token_type: if access_id.contains('*') {
                TokenType::Bearer
            } else {
                TokenType::Lmv1
            },
            access_id: access_id.to_owned(),
            note: note.to_owned(),
            status: TokenStatus::Enabled,
            created_on: 1_700_000_000 + id,
            created_by: format!("creator{}", id % 2),
            last_used_on: 0,
            last_auth_ip: ip.to_owned(),
        }
    }

    #[test]
    fn a_row_turns_back_into_exactly_its_token() {
        let cases = [
            token(
                1,
                1,
                "kgtAbCd**************************************9xYz",
                "",
                "",
            ),
            token(2, 1, "kgtAbCd*x*9xYz", "a note, ünïcode", "192.0.2.7"),
            token(3, 2, "Ab12Cd34Ef56Gh78Ij90", "", "2001:db8::1"),
            token(4, 2, "short", "", "2001:DB8::1"),
            token(5, 3, "kgt****", "", "not an address"),
            token(6, 3, "", "", "::ffff:192.0.2.1"),
        ];
        let rows = TokenRows::from_tokens(cases.to_vec());
        for t in &cases {
            assert_eq!(rows.get(t.id).as_ref(), Some(t));
        }
        // Only what is rare costs an allocation of its own.
        assert!(rows.rows[&1].rare.is_none());
        assert!(rows.rows[&2].rare.is_some());
        assert_eq!(std::mem::size_of::<Row>(), 72);
    }

    #[test]
    fn pages_come_in_id_order_per_owner_and_type() {
        let mut rows = TokenRows::from_tokens(
            (1..=10)
                .rev()
                .map(|i| {
                    token(
                        i,
                        i % 2,
                        if i % 3 == 0 {
                            "Ab12Cd34Ef56Gh78Ij90"
                        } else {
                            "kgtAbCd****9xYz"
                        },
                        "",
                        "",
                    )
                })
                .collect(),
        );
        let ids = |(_, p): (usize, Vec<ApiToken>)| p.iter().map(|t| t.id).collect::<Vec<_>>();
        let page = |kind, descending, offset, size| super::super::Page {
            kind,
            descending,
            offset,
            size,
        };
        assert_eq!(rows.page(None, &page(None, false, 0, 3)).0, 10);
        assert_eq!(ids(rows.page(None, &page(None, false, 2, 3))), [3, 4, 5]);
        assert_eq!(ids(rows.page(None, &page(None, true, 0, 2))), [10, 9]);
        assert_eq!(rows.page(Some(1), &page(None, false, 0, 50)).0, 5);
        assert_eq!(ids(rows.page(Some(1), &page(None, false, 1, 2))), [3, 5]);
        assert_eq!(
            ids(rows.page(Some(0), &page(Some(TokenType::Lmv1), false, 0, 50))),
            [6]
        );
        assert_eq!(
            rows.page(None, &page(Some(TokenType::Lmv1), false, 0, 1)).0,
            3
        );
        rows.put(3, None);
        rows.put(11, Some(token(11, 1, "kgtAbCd****9xYz", "", "")));
        assert_eq!(
            ids(rows.page(Some(1), &page(None, false, 0, 50))),
            [1, 5, 7, 9, 11]
        );
        assert_eq!(rows.len(), 10);
    }

    #[test]
    fn usage_moves_forward_only() {
        let mut rows = TokenRows::from_tokens(vec![token(1, 1, "kgtAbCd****9xYz", "", "")]);
        let at = |at, ip: &str| Usage {
            token_id: 1,
            at,
            ip: ip.to_owned(),
        };
        rows.record_usage(&[at(100, "192.0.2.1"), at(50, "192.0.2.2"), at(7, "x")]);
        let t = rows.get(1).expect("row");
        assert_eq!(
            (t.last_used_on, t.last_auth_ip.as_str()),
            (100, "192.0.2.1")
        );
        rows.record_usage(&[at(200, "a proxy's odd form")]);
        let t = rows.get(1).expect("row");
        assert_eq!(
            (t.last_used_on, t.last_auth_ip.as_str()),
            (200, "a proxy's odd form")
        );
    }
}
