//! `swarmccd --zeroconf`: the server announces itself through avahi-daemon the way
//! distccd does (`src/zeroconf-reg.c`), so that distcc and swarmcc clients with
//! `+zeroconf` find it.
//!
//! A thread of its own keeps the announcement up for the server's life: it waits for
//! avahi-daemon when it is not running (the server serves regardless, after one
//! warning), takes the name Avahi suggests after a collision, publishes again after
//! avahi-daemon restarts or renames its host, and withdraws the service when the
//! [`Publication`] is dropped. If the server dies, Avahi withdraws it by itself, since
//! the records belong to the D-Bus connection.

use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::avahi::{self, Avahi, Event, Group, Service};

/// Between attempts to reach an avahi-daemon that is not there.
const RETRY: Duration = Duration::from_secs(3);
/// How long shutdown waits for the withdrawal to be sent.
const STOP_WAIT: Duration = Duration::from_secs(3);
/// Names tried after local collisions before giving up.
const MAX_RENAMES: usize = 20;
/// DNS labels, and so service names, are at most 63 bytes.
const MAX_NAME: usize = 63;

/// What the server announces.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// `distcc@HOSTNAME`.
    pub name: String,
    pub port: u16,
    /// `AVAHI_PROTO_INET` for a server listening on IPv4 only, else unspecified.
    pub protocol: i32,
    /// The interface index to announce on, when the server listens on one address.
    pub interface: i32,
    /// `txtvers=1`, `cpus=N`, `jobs=N`, `distcc=…`, `gnuhost=…`, `cc_version=…`,
    /// `cc_machine=…`, in distccd's order.
    pub txt: Vec<String>,
    /// `_<machine>--<version>._sub._distcc._tcp`, when `cc` could be asked.
    pub subtype: Option<String>,
}

impl Announcement {
    /// distccd's announcement of a server on `listen`:`port` running `jobs` compilers at
    /// once on `cpus` CPUs, with `cc` (from `PATH`) as the compiler it is filtered by.
    pub fn new(listen: IpAddr, port: u16, cpus: usize, jobs: usize) -> Announcement {
        let id = super::cc_identity();
        if id.is_none() {
            log::warn!(
                "zeroconf: cannot run `cc -dumpversion`/`cc -dumpmachine`: announcing without \
                 the compiler subtype, so clients that filter by compiler will not list this server"
            );
        }
        let mut txt = vec![
            "txtvers=1".to_string(),
            format!("cpus={cpus}"),
            format!("jobs={jobs}"),
            // The protocol spoken: distcc 3.4's, which is what clients need to know.
            "distcc=3.4".to_string(),
            format!("gnuhost={}", env!("SWARMCC_TARGET")),
        ];
        if let Some(id) = &id {
            txt.push(format!("cc_version={}", id.version));
            txt.push(format!("cc_machine={}", id.machine));
        }
        txt.push(format!("swarmcc={}", env!("CARGO_PKG_VERSION")));
        Announcement {
            name: service_name(&host_name()),
            port,
            protocol: if listen.is_ipv4() {
                avahi::PROTO_INET
            } else {
                avahi::UNSPEC
            },
            interface: interface_of(listen).unwrap_or(avahi::UNSPEC),
            txt,
            subtype: id.as_ref().map(super::subtype),
        }
    }
}

/// `distcc@` and the host name, cut to a DNS label's 63 bytes (at a character boundary).
pub fn service_name(host: &str) -> String {
    let mut name = format!("distcc@{host}");
    while name.len() > MAX_NAME {
        name.pop();
    }
    name
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The index of the interface that carries `ip`, for a server bound to one address
/// (`--listen`): announcing it elsewhere would send clients where it does not listen.
fn interface_of(ip: IpAddr) -> Option<i32> {
    if ip.is_unspecified() {
        return None;
    }
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getifaddrs returned, which stays valid until freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() && sockaddr_ip(ifa.ifa_addr) == Some(ip) {
            // SAFETY: ifa_name is a NUL-terminated interface name.
            let index = unsafe { libc::if_nametoindex(ifa.ifa_name) };
            found = (index > 0).then_some(index as i32);
            break;
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

fn sockaddr_ip(addr: *const libc::sockaddr) -> Option<IpAddr> {
    // SAFETY: the family field says which sockaddr type `addr` points to.
    unsafe {
        match i32::from((*addr).sa_family) {
            libc::AF_INET => {
                let a = &*addr.cast::<libc::sockaddr_in>();
                Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let a = &*addr.cast::<libc::sockaddr_in6>();
                Some(IpAddr::from(a.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

/// The running announcement; dropping it withdraws the service.
pub struct Publication {
    stop: Sender<(u64, Event)>,
    thread: Option<JoinHandle<()>>,
}

impl Publication {
    /// Starts announcing `what` in a thread of its own.
    pub fn start(what: Announcement) -> Publication {
        let (stop, events) = mpsc::channel();
        let sender = stop.clone();
        let thread = thread::Builder::new()
            .name("zeroconf".into())
            .spawn(move || Publisher::new(what, sender, events).run())
            .map_err(|e| log::error!("zeroconf: cannot start the announcing thread: {e}"))
            .ok();
        Publication { stop, thread }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        let _ = self.stop.send((0, Event::Stop));
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_WAIT;
        while !thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

struct Publisher {
    what: Announcement,
    sender: Sender<(u64, Event)>,
    events: Receiver<(u64, Event)>,
    conn: u64,
    avahi: Option<Avahi>,
    /// The entry group's path while the service is (being) published.
    group: Option<String>,
    warned: bool,
}

impl Publisher {
    fn new(
        what: Announcement,
        sender: Sender<(u64, Event)>,
        events: Receiver<(u64, Event)>,
    ) -> Publisher {
        Publisher {
            what,
            sender,
            events,
            conn: 0,
            avahi: None,
            group: None,
            warned: false,
        }
    }

    fn run(mut self) {
        let mut next_try = Instant::now();
        loop {
            if self.avahi.is_none() && Instant::now() >= next_try {
                self.connect();
                next_try = Instant::now() + RETRY;
            }
            let event = match self.events.recv_timeout(RETRY) {
                Ok((0, Event::Stop)) | Err(RecvTimeoutError::Disconnected) => break,
                Ok((conn, event)) if conn == self.conn => event,
                Ok(_) | Err(RecvTimeoutError::Timeout) => continue,
            };
            match event {
                Event::ServerState(state) => self.server_state(state),
                Event::GroupState { state, error } => self.group_state(state, &error),
                Event::AvahiBack => next_try = Instant::now(),
                Event::AvahiGone | Event::Closed => {
                    self.lost();
                    next_try = Instant::now() + Duration::from_millis(200);
                }
                _ => {}
            }
        }
        self.withdraw();
    }

    fn connect(&mut self) {
        self.conn += 1;
        match Avahi::connect(self.sender.clone(), self.conn)
            .and_then(|a| a.server_state().map(|state| (a, state)))
        {
            Ok((avahi, state)) => {
                if self.warned {
                    log::warn!("zeroconf: avahi-daemon is reachable again");
                    self.warned = false;
                }
                self.avahi = Some(avahi);
                self.server_state(state);
            }
            Err(e) => {
                if !self.warned {
                    log::warn!(
                        "zeroconf: {e}: this server is not announced until avahi-daemon runs \
                         (serving anyway; trying again every {}s)",
                        RETRY.as_secs()
                    );
                    self.warned = true;
                }
            }
        }
    }

    /// Publishes once Avahi runs; a host name collision or re-registration withdraws the
    /// service until it runs again.
    fn server_state(&mut self, state: i32) {
        if state == avahi::SERVER_RUNNING {
            if self.group.is_none() {
                self.register();
            }
        } else if let Some(avahi) = &self.avahi {
            if let Some(path) = self.group.take() {
                let _ = Group::at(avahi, path).free();
            }
        }
    }

    fn group_state(&mut self, state: i32, error: &str) {
        match state {
            avahi::GROUP_ESTABLISHED => log::info!(
                "zeroconf: announced as '{}' ({} port {})",
                self.what.name,
                super::SERVICE_TYPE,
                self.what.port
            ),
            avahi::GROUP_COLLISION => self.rename(),
            avahi::GROUP_FAILURE => {
                log::error!("zeroconf: avahi-daemon could not announce this server: {error}");
            }
            _ => {}
        }
    }

    /// Another service on the network has our name: take the one Avahi suggests, as
    /// distccd does.
    fn rename(&mut self) {
        if let (Some(avahi), Some(path)) = (&self.avahi, self.group.take()) {
            let _ = Group::at(avahi, path).free();
        }
        self.next_name();
        self.register();
    }

    fn next_name(&mut self) {
        let Some(avahi) = &self.avahi else { return };
        match avahi.alternative_service_name(&self.what.name) {
            Ok(name) => {
                log::warn!(
                    "zeroconf: the name '{}' is taken on the network; announcing as '{name}'",
                    self.what.name
                );
                self.what.name = name;
            }
            Err(e) => log::warn!("zeroconf: {e}"),
        }
    }

    /// Publishes the service in a new entry group. A name this very avahi-daemon
    /// already publishes (a distccd on the same machine) is refused at once rather than
    /// reported as a collision later: the next name is tried then, a few times.
    fn register(&mut self) {
        for _ in 0..MAX_RENAMES {
            let Some(avahi) = &self.avahi else { return };
            let what = &self.what;
            let service = Service {
                interface: what.interface,
                protocol: what.protocol,
                name: &what.name,
                port: what.port,
                txt: &what.txt,
                subtype: what.subtype.as_deref(),
            };
            let group = match avahi.new_group() {
                Ok(g) => g,
                Err(e) => return log::error!("zeroconf: cannot announce '{}': {e}", what.name),
            };
            match group.publish(&service) {
                Ok(()) => {
                    self.group = Some(group.path().to_string());
                    return;
                }
                Err(e) if avahi::is_collision(&e) => {
                    let _ = group.free();
                    self.next_name();
                }
                Err(e) => {
                    let _ = group.free();
                    return log::error!("zeroconf: cannot announce '{}': {e}", what.name);
                }
            }
        }
        log::error!("zeroconf: no free service name found; not announced");
    }

    fn lost(&mut self) {
        if self.avahi.take().is_some() {
            log::warn!("zeroconf: lost avahi-daemon; announcing again once it is back");
        }
        self.group = None;
    }

    fn withdraw(&mut self) {
        if let (Some(avahi), Some(path)) = (&self.avahi, self.group.take()) {
            match Group::at(avahi, path).free() {
                Ok(()) => log::info!("zeroconf: '{}' withdrawn", self.what.name),
                Err(e) => log::warn!("zeroconf: withdrawing '{}': {e}", self.what.name),
            }
        }
        self.avahi = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_fit_a_label() {
        assert_eq!(service_name("build1"), "distcc@build1");
        let long = "h".repeat(80);
        assert_eq!(service_name(&long).len(), 63);
        let wide = "é".repeat(40);
        let name = service_name(&wide);
        assert!(name.len() <= 63 && name.starts_with("distcc@é"), "{name}");
    }

    #[test]
    fn txt_records_are_distccds_in_order() {
        let a = Announcement::new("0.0.0.0".parse().unwrap(), 3632, 8, 10);
        assert_eq!(
            a.txt[..5],
            [
                "txtvers=1",
                "cpus=8",
                "jobs=10",
                "distcc=3.4",
                &format!("gnuhost={}", env!("SWARMCC_TARGET"))
            ]
        );
        assert_eq!(a.protocol, avahi::PROTO_INET);
        assert_eq!(a.interface, avahi::UNSPEC);
        if let Some(sub) = &a.subtype {
            assert!(sub.ends_with("._sub._distcc._tcp"), "{sub}");
            assert!(a.txt.iter().any(|t| t.starts_with("cc_version=")));
        }
        let v6 = Announcement::new("::".parse().unwrap(), 3632, 1, 3);
        assert_eq!(v6.protocol, avahi::UNSPEC);
    }

    #[test]
    fn loopback_is_found_as_an_interface() {
        assert!(interface_of("127.0.0.1".parse().unwrap()).is_some());
        assert_eq!(interface_of("0.0.0.0".parse().unwrap()), None);
    }
}
