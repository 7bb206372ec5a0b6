//! A TCP proxy between a pack store and its server that the fault tests switch off and on: it
//! plays a server that stops (open connections are cut, new ones refused because nothing
//! listens on the port any more), restarts (the port listens again), or hangs (connections
//! stay open but nothing moves). A stop can be armed to happen after exactly N bytes have been
//! forwarded in one direction, so that it lands in the middle of an upload or a download
//! deterministically, whatever the speed of the machine.
//!
//! Only std: a listener polled by one thread, two threads per connection.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the store) to the server: request bodies, uploads.
    Upstream,
    /// From the server to the client: response bodies, downloads.
    Downstream,
}

/// What runs when an armed stop fires, before the proxy stops (for example: SIGKILL the
/// server behind it).
pub type Hook = Box<dyn FnOnce() + Send>;

struct Trigger {
    direction: Direction,
    remaining: u64,
    hook: Option<Hook>,
}

struct State {
    listener: Option<TcpListener>,
    /// Clones of both sockets of every open connection, so that a stop can cut them.
    conns: HashMap<u64, (TcpStream, TcpStream)>,
    next_conn: u64,
    /// Stopped: nothing is forwarded and the port is closed.
    down: bool,
    /// Hanging: connections are accepted and kept, but nothing is forwarded.
    stalled: bool,
    trigger: Option<Trigger>,
}

struct Shared {
    upstream: SocketAddr,
    port: u16,
    state: Mutex<State>,
    quit: AtomicBool,
    fired: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A pump thread that panicked must not take the whole proxy with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the port and cuts every open connection.
    fn stop(&self) {
        let mut st = self.lock();
        st.down = true;
        st.listener = None;
        for (client, server) in st.conns.values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    /// How many of `n` bytes just read in `direction` may be forwarded, and the hook to run
    /// (then stop) if they reach an armed trigger. Waits while the proxy hangs.
    fn admit(&self, direction: Direction, n: usize) -> (usize, Option<Option<Hook>>) {
        loop {
            let mut st = self.lock();
            if st.down || self.quit.load(Ordering::SeqCst) {
                return (0, None);
            }
            if st.stalled {
                drop(st);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let mut fire = None;
            let mut send = n;
            if let Some(t) = st.trigger.as_mut()
                && t.direction == direction
            {
                if n as u64 >= t.remaining {
                    send = usize::try_from(t.remaining).unwrap_or(n);
                    // Down at once, so that no other connection forwards another byte.
                    st.down = true;
                    fire = st.trigger.take().map(|t| t.hook);
                } else {
                    t.remaining -= n as u64;
                }
            }
            return (send, fire);
        }
    }
}

/// The proxy; dropping it stops it and its threads.
pub struct FaultProxy {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy on a free port of 127.0.0.1 forwarding to `upstream`, accepting at once.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream,
            port,
            state: Mutex::new(State {
                listener: Some(listener),
                conns: HashMap::new(),
                next_conn: 0,
                down: false,
                stalled: false,
                trigger: None,
            }),
            quit: AtomicBool::new(false),
            fired: AtomicUsize::new(0),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(&s))
            .expect("spawn the proxy");
        FaultProxy {
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Stops now: cuts every open connection and closes the port (connects are refused).
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Listens on the same port again and forwards as before (also ends a hang). Disarms a
    /// stop that has not fired.
    pub fn restart(&self) {
        let mut st = self.shared.lock();
        st.trigger = None;
        st.stalled = false;
        if st.listener.is_none() {
            // std sets SO_REUSEADDR, so the port is free again at once despite the
            // connections just cut (TIME_WAIT).
            let mut tries = 0;
            let listener = loop {
                match TcpListener::bind(("127.0.0.1", self.shared.port)) {
                    Ok(l) => break l,
                    Err(_) if tries < 100 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("the proxy cannot listen on its port again: {e}"),
                }
            };
            listener
                .set_nonblocking(true)
                .expect("non-blocking listener");
            st.listener = Some(listener);
        }
        st.down = false;
    }

    /// Hangs: open and new connections stay open, but no byte moves until [`restart`].
    ///
    /// [`restart`]: FaultProxy::restart
    pub fn hang(&self) {
        self.shared.lock().stalled = true;
    }

    /// Arms a stop: once `bytes` more bytes have been forwarded in `direction` (counted from
    /// now, over all connections), the proxy forwards nothing more, runs `hook` and stops.
    pub fn stop_after(&self, direction: Direction, bytes: u64, hook: Option<Hook>) {
        self.shared.lock().trigger = Some(Trigger {
            direction,
            remaining: bytes,
            hook,
        });
    }

    /// How many armed stops have fired.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        self.shared.stop();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>) {
    while !shared.quit.load(Ordering::SeqCst) {
        let accepted = {
            let st = shared.lock();
            st.listener.as_ref().map(|l| l.accept())
        };
        let client = match accepted {
            Some(Ok((client, _))) => client,
            Some(Err(e)) if e.kind() != ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            _ => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        if client.set_nonblocking(false).is_err() {
            continue;
        }
        // A server that is not there (killed behind the proxy): the client sees its
        // connection closed.
        let Ok(server) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2))
        else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let id = {
            let mut st = shared.lock();
            if st.down {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                continue;
            }
            let id = st.next_conn;
            st.next_conn += 1;
            match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => {
                    st.conns.insert(id, (c, s));
                }
                _ => continue,
            }
            id
        };
        let live = Arc::new(AtomicUsize::new(2));
        for (direction, from, to) in [
            (Direction::Upstream, client, server),
            (Direction::Downstream, server2, client2),
        ] {
            let s = Arc::clone(shared);
            let live = Arc::clone(&live);
            let spawned = std::thread::Builder::new()
                .name("fault-proxy-pump".into())
                .spawn(move || {
                    pump(&s, direction, from, to);
                    if live.fetch_sub(1, Ordering::SeqCst) == 1 {
                        s.lock().conns.remove(&id);
                    }
                });
            if spawned.is_err() {
                shared.lock().conns.remove(&id);
            }
        }
    }
}

/// Copies one direction of one connection until either side ends it or the proxy stops.
fn pump(shared: &Shared, direction: Direction, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let clean_end = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break false,
        };
        let (send, fire) = shared.admit(direction, n);
        if send > 0 && to.write_all(&buf[..send]).is_err() {
            break false;
        }
        if let Some(hook) = fire {
            // The server dies (hook) before the client notices anything.
            if let Some(hook) = hook {
                hook();
            }
            shared.fired.fetch_add(1, Ordering::SeqCst);
            shared.stop();
            break false;
        }
        if send < n {
            break false;
        }
    };
    if clean_end {
        // Pass the end of this direction on (HTTP keeps the other one for the response).
        let _ = to.shutdown(Shutdown::Write);
    } else {
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    }
}
