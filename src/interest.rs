//! Interest events' way out: one thread (`tickcast-interest`) takes the
//! events the shards' counts make (`engine::interest`), in order, keeps the
//! set that is active now, calls the callbacks registered with
//! [`crate::Server::on_interest`] (and C's), and hands each event to every
//! shard for its `/publish` connections. Callbacks therefore run on that
//! thread, one at a time, never on a shard and never under a tickcast lock:
//! a callback may publish, subscribe upstream or block for a while (events
//! then wait for it; nothing else does).

use crate::engine::interest::Active;
pub use crate::engine::interest::Interest;
use crossbeam_channel::{select, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A callback told of interest changes.
pub type InterestCallback = Box<dyn Fn(&Interest) + Send + Sync>;

/// Hands one event to every shard (for their `/publish` connections);
/// `server` builds it from the shards' mailboxes.
pub(crate) type ToShards = Box<dyn Fn(Arc<Interest>) + Send>;

/// The running dispatcher.
pub(crate) struct Dispatcher {
    pub register: Option<Sender<InterestCallback>>,
    pub active: Active,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Dispatcher {
    pub fn start(events: Receiver<Interest>, shards: ToShards) -> std::io::Result<Self> {
        let (register, registrations) = crossbeam_channel::unbounded::<InterestCallback>();
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let active: Active = Arc::default();
        let mirror = active.clone();
        let thread = std::thread::Builder::new()
            .name("tickcast-interest".into())
            .spawn(move || {
                let mut callbacks: Vec<InterestCallback> = Vec::new();
                loop {
                    select! {
                        recv(events) -> e => match e {
                            Ok(e) => deliver(&e, &mirror, &callbacks, &shards),
                            Err(_) => return,
                        },
                        recv(registrations) -> cb => {
                            let Ok(cb) = cb else { continue };
                            // What is active already, first: the callback
                            // then holds the whole state.
                            let now: Vec<(String, bool)> = mirror
                                .lock()
                                .iter()
                                .map(|(s, p)| (s.clone(), *p))
                                .collect();
                            for (selector, pattern) in now {
                                cb(&Interest { selector, pattern, active: true });
                            }
                            callbacks.push(cb);
                        }
                        recv(stopped) -> _ => {
                            // The shards are gone: what they counted last.
                            for e in events.try_iter() {
                                deliver(&e, &mirror, &callbacks, &|_| {});
                            }
                            return;
                        }
                    }
                }
            })?;
        Ok(Dispatcher {
            register: Some(register),
            active,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Ends the thread once the shards have stopped (again: nothing).
    pub fn stop(&mut self) {
        drop(self.register.take());
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("an interest callback panicked");
            }
        }
    }
}

/// A server that failed to start drops its dispatcher: the thread ends.
impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn deliver(
    e: &Interest,
    mirror: &Active,
    callbacks: &[InterestCallback],
    shards: &dyn Fn(Arc<Interest>),
) {
    {
        let mut m = mirror.lock();
        if e.active {
            m.insert(e.selector.clone(), e.pattern);
        } else {
            m.remove(&e.selector);
        }
    }
    for cb in callbacks {
        cb(e);
    }
    shards(Arc::new(e.clone()));
}
