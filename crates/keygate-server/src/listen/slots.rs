//! Request slots: what a request may hold while it runs, and what it may hold before
//! it is authenticated.
//!
//! Two pools. The **main** pool (`max_concurrent`) is held by authenticated work and
//! by requests that finish without waiting on the client. The **unauthenticated**
//! pool (`max_unauthenticated`, at most `max_unauthenticated_per_client` for one
//! client address) is held by work that waits on a client not yet known: an LMv1 body
//! streaming in before its signature can be checked, a sign-in form. Flooding the
//! second pool with slow bodies therefore never takes a slot from a caller with a
//! valid token; health and readiness take no slot at all. Both pools answer at once
//! when full (503, or 429 for a client over its share), never queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The pools of one server.
#[derive(Debug)]
pub struct Slots {
    main: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    per_client_max: usize,
    /// Unauthenticated slots held, per client (IPv6 by /64).
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A main-pool slot, released on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// An unauthenticated-pool slot, released (and the client's count lowered) on drop.
#[derive(Debug)]
pub struct PreAuthSlot {
    _permit: OwnedSemaphorePermit,
    client: IpAddr,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut m = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

/// Clients are counted by address; an IPv6 client usually holds a whole /64.
pub(crate) fn client_group(ip: IpAddr) -> IpAddr {
    <IpAddr as keygate_auth::throttle::ThrottleKey>::group(ip)
}

impl Slots {
    /// Pools of the configured sizes.
    pub fn new(l: &super::Limits) -> Self {
        Self {
            main: Arc::new(Semaphore::new(l.max_concurrent.max(1))),
            unauthenticated: Arc::new(Semaphore::new(l.max_unauthenticated.max(1))),
            per_client_max: l.max_unauthenticated_per_client.max(1),
            per_client: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A main-pool slot, or the 503 to answer.
    pub fn main(&self) -> Result<Slot, ApiError> {
        self.main
            .clone()
            .try_acquire_owned()
            .map(|p| Slot { _permit: p })
            .map_err(|_| ApiError::AtCapacity("concurrent requests"))
    }

    /// An unauthenticated-pool slot for `client`, or the answer: 429 when this client
    /// already holds its share, 503 when the pool is full.
    pub fn pre_auth(&self, client: IpAddr) -> Result<PreAuthSlot, ApiError> {
        let client = client_group(client);
        let mut m = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = m.get(&client).copied().unwrap_or(0);
        if held >= self.per_client_max {
            return Err(ApiError::TooManyRequests(
                format!(
                    "this address already has {held} unauthenticated requests in progress; \
                     finish or close them first"
                ),
                1,
            ));
        }
        let permit = self
            .unauthenticated
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::AtCapacity("unauthenticated requests"))?;
        m.insert(client, held + 1);
        Ok(PreAuthSlot {
            _permit: permit,
            client,
            per_client: self.per_client.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_cannot_take_the_unauthenticated_pool_and_never_the_main_one() {
        let slots = Slots::new(&super::super::Limits {
            max_concurrent: 2,
            max_unauthenticated: 3,
            max_unauthenticated_per_client: 2,
            ..super::super::Limits::default()
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = slots.pre_auth(a).unwrap();
        let _a2 = slots.pre_auth(a).unwrap();
        assert_eq!(
            slots.pre_auth(a).map(|_| ()).unwrap_err().status().as_u16(),
            429,
            "a's share"
        );
        let _b1 = slots.pre_auth(b).unwrap();
        assert_eq!(
            slots.pre_auth(b).map(|_| ()).unwrap_err().status().as_u16(),
            503,
            "pool full"
        );
        // The main pool is untouched by all of that.
        let _m1 = slots.main().unwrap();
        let _m2 = slots.main().unwrap();
        assert_eq!(slots.main().map(|_| ()).unwrap_err().status().as_u16(), 503);
        drop(a1);
        assert!(slots.pre_auth(a).is_ok(), "a slot given back is free again");
    }
}
