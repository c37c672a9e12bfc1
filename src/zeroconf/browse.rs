//! The browse helper (`swarmcc --zeroconf-serve DIR`): one per `DISTCC_DIR`, started by
//! the first client that finds none, it browses Avahi for distcc servers and keeps
//! `DIR/hosts` up to date until nobody has read it for [`cache::MAX_IDLE`].
//!
//! Its start mirrors distcc's helper, with one change that every client (distcc's too)
//! benefits from: it holds the host file's lock until its first complete answer (Avahi's
//! "all for now" with every service resolved, at most [`cache::FIRST_ANSWER`]), so no
//! client reads a half-filled list. When avahi-daemon goes away it keeps the last list
//! and tries again every few seconds; a new browse replaces the list once it has
//! answered in full.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use super::avahi::{Avahi, Event, Item};
use super::cache::{self, CacheDir, Entry};

/// How often the idle check runs, and how long the helper waits between attempts to
/// reach an avahi-daemon that is not there.
const TICK: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_secs(3);
/// A service that cannot be resolved is tried this many times, this far apart.
const RESOLVE_TRIES: u32 = 5;
const RESOLVE_AGAIN: Duration = Duration::from_secs(2);

/// Entry point of `swarmcc --zeroconf-serve DIR`: returns the exit code. Exits at once,
/// with 0, when another helper (swarmcc's or distcc's) already serves `dir`.
pub fn serve_main(dir: &Path) -> i32 {
    match Helper::start(dir) {
        Ok(Some(mut helper)) => {
            helper.run();
            log::info!("zeroconf helper for {} unused; exiting", dir.display());
            0
        }
        Ok(None) => 0,
        Err(e) => {
            log::error!("zeroconf helper for {}: {e}", dir.display());
            1
        }
    }
}

/// A browsed service: keyed by where Avahi saw it, resolved to one address.
type Key = (i32, i32, String, String);

struct Helper {
    hosts: File,
    /// Held for the helper's whole life: it is what tells clients a helper runs.
    _lock: File,
    started: SystemTime,
    kind: String,
    /// The answer the file shows, or is about to.
    found: HashMap<Key, Entry>,
    /// The file is still locked, waiting for the first full answer.
    holding: bool,
    hold_until: Instant,
    avahi: Option<Avahi>,
    /// The connection whose events count (older ones' late events are dropped).
    conn: u64,
    /// The current browse has not yet said "all for now": the file keeps the old list.
    settling: bool,
    next_try: Instant,
    warned: bool,
    /// Services that could not be resolved yet: tries so far, when to try again.
    unresolved: Vec<(Item, u32, Instant)>,
    /// How many servers the host file lists now.
    showing: usize,
    /// Why no browse runs, written into the otherwise empty host file.
    problem: Option<String>,
    events: Receiver<(u64, Event)>,
    sender: Sender<(u64, Event)>,
}

impl Helper {
    /// Takes the host file's lock, then the helper lock; `None` if another helper has it.
    fn start(dir: &Path) -> Result<Option<Helper>, String> {
        let cache = CacheDir {
            dir: dir.to_owned(),
        };
        let hosts = cache.open(&cache.hosts_path()).map_err(|e| e.to_string())?;
        // Lock order: the host file first, so that once clients see the helper lock
        // taken, the host file is already held until the first answer.
        let deadline = Instant::now() + cache::FIRST_ANSWER;
        if !cache::wait_for_lock(&hosts, libc::F_WRLCK, deadline).map_err(|e| e.to_string())? {
            return Err(format!("{} stays locked", cache.hosts_path().display()));
        }
        let lock = cache.open(&cache.lock_path()).map_err(|e| e.to_string())?;
        if !cache::try_lock(&lock, libc::F_WRLCK).map_err(|e| e.to_string())? {
            let _ = cache::unlock(&hosts);
            return Ok(None);
        }
        // Whatever an earlier helper left is stale now.
        cache::write_hosts(&hosts, "", true).map_err(|e| e.to_string())?;
        let kind = match super::cc_identity() {
            Some(id) => super::subtype(&id),
            None => {
                log::warn!(
                    "zeroconf: cannot run `cc -dumpversion`/`cc -dumpmachine`; listing every \
                     distcc server, whatever its compiler"
                );
                super::SERVICE_TYPE.to_string()
            }
        };
        log::info!("zeroconf helper for {}: browsing {kind}", dir.display());
        let (sender, events) = mpsc::channel();
        Ok(Some(Helper {
            hosts,
            _lock: lock,
            started: SystemTime::now(),
            kind,
            found: HashMap::new(),
            holding: true,
            hold_until: Instant::now() + cache::FIRST_ANSWER,
            avahi: None,
            conn: 0,
            settling: true,
            next_try: Instant::now(),
            warned: false,
            problem: None,
            showing: 0,
            unresolved: Vec::new(),
            events,
            sender,
        }))
    }

    fn run(&mut self) {
        loop {
            if self.avahi.is_none() && Instant::now() >= self.next_try {
                self.connect();
            }
            if self.holding && (!self.settling || Instant::now() >= self.hold_until) {
                self.publish();
                self.holding = false;
            }
            if !self.holding && self.unused() {
                return;
            }
            self.retry_unresolved();
            let wait = if self.holding {
                self.hold_until
                    .saturating_duration_since(Instant::now())
                    .min(TICK)
            } else {
                TICK
            };
            match self.events.recv_timeout(wait) {
                Ok((conn, event)) if conn == self.conn => self.handle(event),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// True once nobody has read the host file for `MAX_IDLE`.
    fn unused(&self) -> bool {
        let _ = cache::rearm_access_time(&self.hosts);
        cache::idle_for(&self.hosts, self.started).map_or(true, |idle| idle > cache::MAX_IDLE)
    }

    fn connect(&mut self) {
        self.conn += 1;
        let result = Avahi::connect(self.sender.clone(), self.conn)
            .and_then(|a| a.browse(&self.kind).map(|()| a));
        match result {
            Ok(avahi) => {
                if self.warned {
                    log::warn!("zeroconf: avahi-daemon is back; browsing again");
                }
                self.avahi = Some(avahi);
                self.settling = true;
                self.warned = false;
                self.problem = None;
            }
            Err(e) => {
                if !self.warned {
                    log::warn!(
                        "zeroconf: {e}: no servers can be discovered until avahi-daemon runs \
                         (trying again every {}s)",
                        RETRY.as_secs()
                    );
                    self.warned = true;
                }
                self.next_try = Instant::now() + RETRY;
                self.settling = false;
                // Nothing will come from this browse: say why to the clients (distcc
                // reads it as a comment), but keep a list an earlier browse found.
                if self.showing == 0 && self.problem.as_deref() != Some(e.as_str()) {
                    self.problem = Some(e);
                    self.publish();
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::ItemNew(item) => self.add(item, 0),
            Event::ItemRemove(item) => {
                log::info!("zeroconf: {} is gone", item.name);
                self.unresolved.retain(|(i, _, _)| *i != item);
                self.found.remove(&key(&item));
                self.publish_if_settled();
            }
            Event::AllForNow => {
                if self.settling {
                    self.settling = false;
                    self.publish();
                }
            }
            Event::BrowserFailure(e) => self.lost(&format!("the browse failed: {e}")),
            Event::AvahiGone => self.lost("avahi-daemon left the bus"),
            Event::Closed => self.lost("the D-Bus connection closed"),
            Event::AvahiBack => self.next_try = Instant::now(),
            Event::ServerState(_) | Event::GroupState { .. } | Event::Stop => {}
        }
    }

    /// Resolves a new service and lists it.
    fn add(&mut self, item: Item, tries: u32) {
        let Some(avahi) = &self.avahi else { return };
        match avahi.resolve(&item) {
            Ok(r) => {
                let entry = Entry {
                    name: item.name.clone(),
                    zone: link_local_zone(&r.address, r.interface),
                    address: r.address,
                    port: r.port,
                    limit: super::limit_from_txt(&r.txt),
                };
                log::info!(
                    "zeroconf: {} at {}:{} (limit {})",
                    item.name,
                    entry.address,
                    entry.port,
                    entry.limit
                );
                self.found.insert(key(&item), entry);
                self.publish_if_settled();
            }
            // distcc forgets such a service until it is announced again; it may only
            // have been busy announcing itself, so it is tried again a few times.
            Err(e) if tries + 1 < RESOLVE_TRIES => {
                log::info!("zeroconf: cannot resolve {} yet: {e}", item.name);
                self.unresolved
                    .push((item, tries + 1, Instant::now() + RESOLVE_AGAIN));
            }
            Err(e) => log::warn!("zeroconf: cannot resolve {}: {e}", item.name),
        }
    }

    /// Tries again the services whose time has come.
    fn retry_unresolved(&mut self) {
        let now = Instant::now();
        let (due, later) = std::mem::take(&mut self.unresolved)
            .into_iter()
            .partition(|(_, _, at)| *at <= now);
        self.unresolved = later;
        for (item, tries, _) in due {
            self.add(item, tries);
        }
    }

    /// Avahi is gone: keep the list the file shows and try again shortly. The new
    /// browse starts from nothing, and its list replaces the old one once complete.
    fn lost(&mut self, why: &str) {
        if self.avahi.take().is_some() {
            log::warn!("zeroconf: {why}; keeping the last list and trying again");
        }
        self.found.clear();
        self.unresolved.clear();
        self.settling = true;
        self.next_try = Instant::now() + Duration::from_millis(500);
    }

    fn publish_if_settled(&mut self) {
        if !self.settling {
            self.publish();
        }
    }

    /// Writes the current answer to the host file (releasing the first-answer hold).
    fn publish(&mut self) {
        let entries: Vec<Entry> = self.found.values().cloned().collect();
        let text = match &self.problem {
            Some(why) if entries.is_empty() => cache::problem_text(why),
            _ => cache::format_hosts(&entries),
        };
        match cache::write_hosts(&self.hosts, &text, false) {
            Ok(()) => self.showing = entries.len(),
            Err(e) => log::warn!("zeroconf: cannot write the host list: {e}"),
        }
        self.holding = false;
    }
}

fn key(item: &Item) -> Key {
    (
        item.interface,
        item.protocol,
        item.name.clone(),
        item.domain.clone(),
    )
}

/// The interface name an IPv6 link-local address needs to be reachable.
fn link_local_zone(address: &IpAddr, interface: i32) -> Option<String> {
    let IpAddr::V6(v6) = address else {
        return None;
    };
    if (v6.segments()[0] & 0xffc0) != 0xfe80 || interface < 0 {
        return None;
    }
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes into `name`.
    let p = unsafe { libc::if_indextoname(interface as libc::c_uint, name.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success `name` holds a NUL-terminated string.
    let c = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Some(c.to_string_lossy().into_owned())
}
