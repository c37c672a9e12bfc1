//! The part of avahi-daemon's D-Bus API that distcc uses (libavahi-client speaks the
//! same API): service browsers, resolving, entry groups, and the daemon's state.
//!
//! A connection turns everything Avahi (and the bus) signals into [`Event`]s on the
//! caller's channel, read by a thread of its own, so that callers can wait for the next
//! event with a timeout and send events of their own on the same channel.

use std::future::poll_fn;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

use futures_core::Stream;
use zbus::export::serde::Serialize;
use zbus::message::Type;
use zbus::wire::DynamicDeserialize;
use zbus::{Connection, DynamicType, Message, MessageStream, OwnedObjectPath};

/// Any interface, any protocol (`AVAHI_IF_UNSPEC`, `AVAHI_PROTO_UNSPEC`).
pub const UNSPEC: i32 = -1;
/// `AVAHI_PROTO_INET`: mDNS over IPv4 only.
pub const PROTO_INET: i32 = 0;
/// `AVAHI_PROTO_INET6`.
pub const PROTO_INET6: i32 = 1;

/// `AvahiServerState`.
pub const SERVER_RUNNING: i32 = 2;
/// `AvahiEntryGroupState`.
pub const GROUP_ESTABLISHED: i32 = 2;
pub const GROUP_COLLISION: i32 = 3;
pub const GROUP_FAILURE: i32 = 4;

const AVAHI: &str = "org.freedesktop.Avahi";
const SERVER: &str = "org.freedesktop.Avahi.Server";
const BROWSER: &str = "org.freedesktop.Avahi.ServiceBrowser";
const GROUP: &str = "org.freedesktop.Avahi.EntryGroup";

/// Longest wait for one answer from the bus or Avahi (a resolve that gets no answer
/// from the network fails on Avahi's side after about 5 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(8);

/// A service a browser reported, as Avahi names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub interface: i32,
    pub protocol: i32,
    pub name: String,
    pub kind: String,
    pub domain: String,
}

/// Where a resolved service is, and its TXT data.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub interface: i32,
    pub address: IpAddr,
    pub port: u16,
    pub txt: Vec<Vec<u8>>,
}

/// What happened on the bus, plus [`Event::Stop`] for a caller's own use.
#[derive(Debug, Clone)]
pub enum Event {
    ItemNew(Item),
    ItemRemove(Item),
    /// The browser has reported everything Avahi knows or heard for now.
    AllForNow,
    BrowserFailure(String),
    GroupState {
        state: i32,
        error: String,
    },
    ServerState(i32),
    /// avahi-daemon left the bus (stopped or restarted): its browsers and entry groups
    /// are gone with it.
    AvahiGone,
    /// An avahi-daemon (re)appeared on the bus.
    AvahiBack,
    /// The bus connection itself ended.
    Closed,
    /// Not sent by the connection: a caller's request to end its loop.
    Stop,
}

/// True for the error Avahi gives when a name is already published on this machine.
pub fn is_collision(error: &str) -> bool {
    error.contains("org.freedesktop.Avahi.CollisionError")
}

/// A connection to avahi-daemon through the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else
/// `/run/dbus/system_bus_socket`). Closed when dropped.
pub struct Avahi {
    conn: Connection,
}

type Res<T> = Result<T, String>;

impl Avahi {
    /// Connects and subscribes to Avahi's signals; they arrive on `events` from now on,
    /// each with `tag`, so that a caller that reconnects can tell the current
    /// connection's events from a closed one's. Fails when there is no system bus.
    pub fn connect(events: Sender<(u64, Event)>, tag: u64) -> Res<Avahi> {
        let conn = zbus::block_on(
            zbus::connection::Builder::system()
                .method_timeout(CALL_TIMEOUT)
                .build(),
        )
        .map_err(|e| format!("cannot connect to the D-Bus system bus: {e}"))?;
        let avahi = Avahi { conn };
        // Subscribed before any browser exists: Avahi starts sending as soon as one is
        // created, before its path could be known to match on.
        for rule in [
            format!("type='signal',sender='{AVAHI}',interface='{BROWSER}'"),
            format!("type='signal',sender='{AVAHI}',interface='{GROUP}'"),
            format!("type='signal',sender='{AVAHI}',interface='{SERVER}'"),
            format!(
                "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',\
                 arg0='{AVAHI}'"
            ),
        ] {
            avahi.bus_call("AddMatch", &(rule.as_str(),))?;
        }
        let stream = MessageStream::from(avahi.conn.clone());
        thread::Builder::new()
            .name("avahi-events".into())
            .spawn(move || forward_events(stream, events, tag))
            .map_err(|e| format!("cannot start the D-Bus reader thread: {e}"))?;
        Ok(avahi)
    }

    fn call<R, B>(&self, path: &str, interface: &str, method: &str, body: &B) -> Res<R>
    where
        B: Serialize + DynamicType,
        R: for<'d> DynamicDeserialize<'d>,
    {
        let reply =
            zbus::block_on(
                self.conn
                    .call_method(Some(AVAHI), path, Some(interface), method, body),
            )
            .map_err(|e| format!("avahi-daemon {method}: {e}"))?;
        let body = reply.body();
        body.deserialize()
            .map_err(|e| format!("avahi-daemon {method}: unexpected answer: {e}"))
    }

    fn bus_call<B>(&self, method: &str, body: &B) -> Res<()>
    where
        B: Serialize + DynamicType,
    {
        zbus::block_on(self.conn.call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            method,
            body,
        ))
        .map(drop)
        .map_err(|e| format!("D-Bus {method}: {e}"))
    }

    /// The daemon's state ([`SERVER_RUNNING`] once its host name is established).
    pub fn server_state(&self) -> Res<i32> {
        self.call::<i32, _>("/", SERVER, "GetState", &())
    }

    /// The daemon's version string (`avahi 0.8`).
    pub fn version(&self) -> Res<String> {
        self.call::<String, _>("/", SERVER, "GetVersionString", &())
    }

    /// Starts browsing `kind` (a type or a subtype) in the default domain on every
    /// interface and protocol; results arrive as [`Event::ItemNew`] and friends.
    pub fn browse(&self, kind: &str) -> Res<()> {
        let args = (UNSPEC, UNSPEC, kind, "", 0u32);
        self.call::<OwnedObjectPath, _>("/", SERVER, "ServiceBrowserNew", &args)
            .map(drop)
    }

    /// Resolves a browsed service to one address (of the family it was seen on), port
    /// and TXT data.
    pub fn resolve(&self, item: &Item) -> Res<Resolved> {
        let args = (
            item.interface,
            item.protocol,
            item.name.as_str(),
            item.kind.as_str(),
            item.domain.as_str(),
            // The address family the service was seen on: asked for any, Avahi may
            // answer an IPv4 sighting with an IPv6 link-local address (distcc then
            // writes it without its interface, and cannot connect to it).
            item.protocol,
            0u32,
        );
        let r: ResolveReply = self.call("/", SERVER, "ResolveService", &args)?;
        let (interface, address, port, txt) = (r.0, r.7, r.8, r.9);
        let address = address
            .parse()
            .map_err(|_| format!("avahi-daemon gave an unusable address {address:?}"))?;
        Ok(Resolved {
            interface,
            address,
            port,
            txt,
        })
    }

    /// The name Avahi suggests after `name` collided (`distcc@a` → `distcc@a #2`).
    pub fn alternative_service_name(&self, name: &str) -> Res<String> {
        self.call::<String, _>("/", SERVER, "GetAlternativeServiceName", &(name,))
    }

    /// A new, empty entry group; its state changes arrive as [`Event::GroupState`].
    pub fn new_group(&self) -> Res<Group<'_>> {
        let path = self.call::<OwnedObjectPath, _>("/", SERVER, "EntryGroupNew", &())?;
        Ok(Group {
            avahi: self,
            path: path.to_string(),
        })
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        // Ends the reader thread's stream too; Avahi frees what this connection owned.
        let _ = zbus::block_on(self.conn.clone().close());
    }
}

/// One service to publish.
pub struct Service<'a> {
    pub interface: i32,
    pub protocol: i32,
    pub name: &'a str,
    pub port: u16,
    pub txt: &'a [String],
    pub subtype: Option<&'a str>,
}

/// An Avahi entry group: the records published together.
pub struct Group<'a> {
    avahi: &'a Avahi,
    path: String,
}

impl<'a> Group<'a> {
    /// The group at `path`, made earlier on this connection.
    pub fn at(avahi: &'a Avahi, path: String) -> Group<'a> {
        Group { avahi, path }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Adds `service` (and its subtype) to the group and publishes it.
    pub fn publish(&self, service: &Service<'_>) -> Res<()> {
        let txt: Vec<&[u8]> = service.txt.iter().map(|t| t.as_bytes()).collect();
        let add = (
            service.interface,
            service.protocol,
            0u32,
            service.name,
            super::SERVICE_TYPE,
            "",
            "",
            service.port,
            txt,
        );
        self.avahi
            .call::<(), _>(&self.path, GROUP, "AddService", &add)?;
        if let Some(subtype) = service.subtype {
            let sub = (
                service.interface,
                service.protocol,
                0u32,
                service.name,
                super::SERVICE_TYPE,
                "",
                subtype,
            );
            self.avahi
                .call::<(), _>(&self.path, GROUP, "AddServiceSubtype", &sub)?;
        }
        self.avahi.call::<(), _>(&self.path, GROUP, "Commit", &())
    }

    /// Withdraws what the group published, keeping the group for another try.
    pub fn reset(&self) -> Res<()> {
        self.avahi.call::<(), _>(&self.path, GROUP, "Reset", &())
    }

    /// Withdraws the records and frees the group.
    pub fn free(self) -> Res<()> {
        self.avahi.call::<(), _>(&self.path, GROUP, "Free", &())
    }
}

/// `ResolveService`'s answer: interface, protocol, name, type, domain, host, address
/// protocol, address, port, TXT data, flags.
type ResolveReply = (
    i32,
    i32,
    String,
    String,
    String,
    String,
    i32,
    String,
    u16,
    Vec<Vec<u8>>,
    u32,
);

/// Reads every message of the connection and passes on the signals that matter, until
/// the connection ends or nobody listens any more.
fn forward_events(mut stream: MessageStream, events: Sender<(u64, Event)>, tag: u64) {
    zbus::block_on(async {
        loop {
            let next = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
            let Some(Ok(message)) = next else {
                if next.is_none() {
                    let _ = events.send((tag, Event::Closed));
                    return;
                }
                continue;
            };
            if let Some(event) = to_event(&message) {
                if events.send((tag, event)).is_err() {
                    return;
                }
            }
        }
    });
}

fn to_event(m: &Message) -> Option<Event> {
    if m.message_type() != Type::Signal {
        return None;
    }
    let header = m.header();
    let interface = header.interface()?.as_str().to_owned();
    let member = header.member()?.as_str().to_owned();
    let body = m.body();
    let item = || -> Option<Item> {
        let (interface, protocol, name, kind, domain, _flags): (
            i32,
            i32,
            String,
            String,
            String,
            u32,
        ) = body.deserialize().ok()?;
        Some(Item {
            interface,
            protocol,
            name,
            kind,
            domain,
        })
    };
    match (interface.as_str(), member.as_str()) {
        (BROWSER, "ItemNew") => item().map(Event::ItemNew),
        (BROWSER, "ItemRemove") => item().map(Event::ItemRemove),
        (BROWSER, "AllForNow") => Some(Event::AllForNow),
        (BROWSER, "Failure") => Some(Event::BrowserFailure(
            body.deserialize::<(String,)>()
                .map(|t| t.0)
                .unwrap_or_default(),
        )),
        (GROUP, "StateChanged") => {
            let (state, error): (i32, String) = body.deserialize().ok()?;
            Some(Event::GroupState { state, error })
        }
        (SERVER, "StateChanged") => {
            let (state, _error): (i32, String) = body.deserialize().ok()?;
            Some(Event::ServerState(state))
        }
        ("org.freedesktop.DBus", "NameOwnerChanged") => {
            let (_name, _old, new): (String, String, String) = body.deserialize().ok()?;
            Some(if new.is_empty() {
                Event::AvahiGone
            } else {
                Event::AvahiBack
            })
        }
        _ => None,
    }
}
