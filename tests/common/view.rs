//! A subscriber's view of its topics, checked event by event: every `seq`
//! step explained (+1, the `conflated` count, or a restart after
//! `cleared`), and compared with the server's values at the end.

use super::Client;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tickcast::Server;

/// The price fields the randomized tests publish.
pub const FIELDS: [&str; 3] = ["bid", "ask", "last"];

/// One topic as a subscriber holds it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Held {
    pub epoch: Option<String>,
    pub seq: u64,
    pub fields: HashMap<String, f64>,
}

/// A subscriber's view, checked event by event.
pub struct View {
    pub name: String,
    pub topics: HashMap<String, Held>,
    trace: Vec<String>,
    /// Updates that stood for more than one (`conflated` > 1).
    pub merged: usize,
    pub cleared: usize,
    /// `update` and `status` events received.
    pub updates: usize,
    pub statuses: usize,
}

impl View {
    pub fn new(name: &str) -> View {
        View {
            name: name.into(),
            topics: HashMap::new(),
            trace: Vec::new(),
            merged: 0,
            cleared: 0,
            updates: 0,
            statuses: 0,
        }
    }

    fn fail(&self, why: String) -> ! {
        panic!("{}: {why}\nrecent:\n{}", self.name, self.trace.join("\n"))
    }

    pub fn take(&mut self, ev: &Value) {
        self.trace.push(ev.to_string());
        if self.trace.len() > 40 {
            self.trace.remove(0);
        }
        let Some(t) = ev["topic"].as_str() else {
            return;
        };
        let seq = ev["seq"].as_u64().unwrap_or(0);
        match ev["event"].as_str().unwrap_or_default() {
            "snapshot" => {
                let h = Held {
                    epoch: ev["epoch"].as_str().map(String::from),
                    seq,
                    fields: fields_of(ev),
                };
                self.topics.insert(t.to_string(), h);
            }
            "update" => {
                let held = self.topics.entry(t.to_string()).or_default();
                self.updates += 1;
                let step = ev["conflated"].as_u64().unwrap_or(1);
                self.merged += usize::from(step > 1);
                if held.seq == 0 {
                    // New to this subscriber (or cleared): the numbering
                    // starts at 1 and names its epoch.
                    if seq != step || ev["epoch"].as_str().is_none() {
                        let why = format!("{t}: first update {ev} is not seq 1 with its epoch");
                        self.fail(why);
                    }
                    held.epoch = ev["epoch"].as_str().map(String::from);
                } else if seq != held.seq + step {
                    let why = format!("{t}: seq {} then {seq}, conflated {step}", held.seq);
                    self.fail(why);
                }
                held.seq = seq;
                held.fields.extend(fields_of(ev));
            }
            "status" => self.statuses += 1,
            "cleared" => {
                self.cleared += 1;
                self.topics.insert(t.to_string(), Held::default());
            }
            _ => {}
        }
    }
}

pub fn fields_of(ev: &Value) -> HashMap<String, f64> {
    FIELDS
        .iter()
        .filter_map(|f| Some((f.to_string(), ev[*f].as_f64()?)))
        .collect()
}

/// Reads until the connection has been quiet for `quiet`.
pub fn drain(c: &mut Client, v: &mut View, quiet: Duration) {
    while let Some(ev) = c.try_next_event(quiet) {
        v.take(&ev);
    }
}

/// What the server holds for `t`, as a subscriber would.
pub fn server_view(server: &Server, t: &str) -> Held {
    match server.snapshot(t) {
        None => Held::default(),
        Some(s) => Held {
            epoch: Some(s.epoch.as_str().to_string()),
            seq: s.seq,
            fields: [
                ("bid", s.prices.bid),
                ("ask", s.prices.ask),
                ("last", s.prices.last),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect(),
        },
    }
}

pub fn covered(sel: &[String], t: &str) -> bool {
    sel.iter().any(|s| match s.strip_suffix('*') {
        Some(p) => t.starts_with(p),
        None => s == t,
    })
}
