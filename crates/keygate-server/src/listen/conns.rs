//! Open connections, counted per client address, so no one client can hold every
//! socket (and file descriptor) the process has.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The connection table of one listener.
#[derive(Debug)]
pub(crate) struct Conns {
    max: usize,
    per_client_max: usize,
    /// Peers exempt from the per-client cap: trusted proxies carry many clients.
    exempt: Arc<[IpAddr]>,
    state: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The listener holds its most connections.
    Total,
    /// This client holds its most connections.
    Client,
}

/// One open connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Held {
    client: Option<IpAddr>,
    state: Arc<Mutex<Table>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut t = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.total = t.total.saturating_sub(1);
        if let Some(c) = self.client
            && let Some(n) = t.by_client.get_mut(&c)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.by_client.remove(&c);
            }
        }
    }
}

impl Conns {
    /// A table allowing `max` connections, `per_client_max` from one address (0: no
    /// per-client cap), none of it counted for `exempt` peers' per-client share.
    pub(crate) fn new(max: usize, per_client_max: usize, exempt: Arc<[IpAddr]>) -> Self {
        Self {
            max: max.max(1),
            per_client_max,
            exempt,
            state: Arc::new(Mutex::new(Table::default())),
        }
    }

    /// A place for a connection from `peer`, or why there is none.
    pub(crate) fn admit(&self, peer: IpAddr) -> Result<Held, Full> {
        let mut t = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.total >= self.max {
            return Err(Full::Total);
        }
        let client = (self.per_client_max > 0 && !self.exempt.contains(&peer))
            .then(|| super::slots::client_group(peer));
        if let Some(c) = client {
            let n = t.by_client.entry(c).or_insert(0);
            if *n >= self.per_client_max {
                return Err(Full::Client);
            }
            *n += 1;
        }
        t.total += 1;
        Ok(Held {
            client,
            state: self.state.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_has_its_share_and_proxies_are_exempt() {
        let proxy: IpAddr = [10, 0, 0, 9].into();
        let c = Conns::new(4, 2, vec![proxy].into());
        let a: IpAddr = [10, 0, 0, 1].into();
        let a1 = c.admit(a).unwrap();
        let _a2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).unwrap_err(), Full::Client);
        let _p1 = c.admit(proxy).unwrap();
        let _p2 = c.admit(proxy).unwrap();
        assert_eq!(c.admit(proxy).unwrap_err(), Full::Total);
        drop(a1);
        assert!(c.admit(a).is_ok());
    }
}
