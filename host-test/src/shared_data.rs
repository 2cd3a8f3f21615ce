//! Shared key/value data and shared queues of one VM.

use std::collections::{BTreeMap, VecDeque};

use crate::abi::status::Status;

/// A queue registered by the guest.
#[derive(Debug)]
struct Queue {
    vm_id: String,
    name: String,
    /// Context notified with `proxy_on_queue_ready` on enqueue.
    owner: u32,
    items: VecDeque<Vec<u8>>,
}

/// Shared data as several VMs of one process see it: clone the handle to
/// give another plugin the same store.
pub type SharedDataHandle = std::rc::Rc<std::cell::RefCell<SharedData>>;

/// Shared data with Envoy's compare-and-swap rules, and shared queues.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct SharedData {
    data: BTreeMap<String, (Vec<u8>, u32)>,
    last_cas: u32,
    queues: Vec<Queue>,
    /// `(owner context, queue id)` notifications not yet delivered.
    pub ready: VecDeque<(u32, u32)>,
}

impl SharedData {
    /// Value and CAS token of `key` (`proxy_get_shared_data`).
    pub fn get(&self, key: &str) -> Option<(&[u8], u32)> {
        self.data.get(key).map(|(v, cas)| (v.as_slice(), *cas))
    }

    /// `proxy_set_shared_data`: `cas == 0` writes unconditionally; otherwise
    /// an existing key must still carry that token. A missing key is created
    /// whatever the token, as in Envoy.
    pub fn set(&mut self, key: &str, value: Vec<u8>, cas: u32) -> Status {
        if let Some((_, current)) = self.data.get(key) {
            if cas != 0 && cas != *current {
                return Status::CasMismatch;
            }
        }
        let next = self.next_cas();
        self.data.insert(key.to_string(), (value, next));
        Status::Ok
    }

    fn next_cas(&mut self) -> u32 {
        self.last_cas = self.last_cas.wrapping_add(1).max(1);
        self.last_cas
    }

    /// `proxy_register_shared_queue`: registering a name again returns the
    /// same id (ids start at 1).
    pub fn register_queue(&mut self, vm_id: &str, name: &str, owner: u32) -> u32 {
        if let Some(id) = self.find_queue(vm_id, name) {
            return id;
        }
        self.queues.push(Queue {
            vm_id: vm_id.to_string(),
            name: name.to_string(),
            owner,
            items: VecDeque::new(),
        });
        self.queues.len() as u32
    }

    /// `proxy_resolve_shared_queue`.
    pub fn find_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .map(|i| i as u32 + 1)
    }

    fn queue_mut(&mut self, id: u32) -> Option<&mut Queue> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.queues.get_mut(index)
    }

    /// `proxy_enqueue_shared_queue`; schedules a ready notification.
    pub fn enqueue(&mut self, id: u32, value: Vec<u8>) -> Status {
        let Some(queue) = self.queue_mut(id) else {
            return Status::NotFound;
        };
        queue.items.push_back(value);
        let owner = queue.owner;
        self.ready.push_back((owner, id));
        Status::Ok
    }

    /// `proxy_dequeue_shared_queue`.
    pub fn dequeue(&mut self, id: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queue_mut(id).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    /// Every key with its value, for tests.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.data
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap() {
        let mut s = SharedData::default();
        assert!(s.get("k").is_none());
        assert_eq!(s.set("k", b"1".to_vec(), 0), Status::Ok);
        let (_, cas) = s.get("k").unwrap();
        assert_ne!(cas, 0);
        assert_eq!(s.set("k", b"2".to_vec(), cas + 1), Status::CasMismatch);
        assert_eq!(s.set("k", b"2".to_vec(), cas), Status::Ok);
        assert_eq!(s.set("k", b"3".to_vec(), cas), Status::CasMismatch);
        assert_eq!(s.get("k").unwrap().0, b"2");
        assert_eq!(s.set("new", b"x".to_vec(), 42), Status::Ok);
    }

    #[test]
    fn queues() {
        let mut s = SharedData::default();
        let id = s.register_queue("", "q", 1);
        assert_eq!(s.register_queue("", "q", 1), id);
        assert_eq!(s.find_queue("", "q"), Some(id));
        assert_eq!(s.find_queue("other", "q"), None);
        assert_eq!(s.dequeue(id), Err(Status::Empty));
        assert_eq!(s.enqueue(id, b"a".to_vec()), Status::Ok);
        assert_eq!(s.ready.pop_front(), Some((1, id)));
        assert_eq!(s.dequeue(id), Ok(b"a".to_vec()));
        assert_eq!(s.enqueue(77, Vec::new()), Status::NotFound);
        assert_eq!(s.dequeue(0), Err(Status::NotFound));
    }
}
