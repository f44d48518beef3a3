//! The tiny server every lab pod runs on each declared containerPort:
//! TCP answers one line, or speaks the port's protocol (see `speak`), then
//! echoes; UDP echoes each datagram, or answers it in the port's protocol.
//! The same process makes the pod's declared calls.

use std::path::Path;
use std::time::Duration;

use bulkhead_model::exposure::AppProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::LabError;
use crate::speak;

/// What a pod calls (see `calls`), and how often.
#[derive(Debug, Clone, Default)]
pub struct CallPlan {
    /// The pod's namespace, for short service names.
    pub namespace: String,
    /// Targets.
    pub calls: Vec<crate::calls::Call>,
    /// Interval between calls to each target.
    pub interval: std::time::Duration,
}

/// How long a server of a client-first protocol waits for the client's
/// first bytes before it sends the plain banner a silent probe expects.
const CLIENT_FIRST_WAIT: Duration = Duration::from_millis(200);

fn protocol_of(speak: &[(u16, AppProtocol)], port: u16) -> Option<AppProtocol> {
    speak.iter().find(|(p, _)| *p == port).map(|(_, a)| *a)
}

/// One TCP connection: the protocol's greeting or answer (see `speak`),
/// else the banner; then echo until the client closes, so long-lived test
/// connections work too.
async fn connection(mut s: tokio::net::TcpStream, name: String, speaks: Option<AppProtocol>) {
    let mut buf = [0u8; 4096];
    let first = match speaks {
        Some(p) if speak::server_first(p) => speak::greeting(p, &name),
        Some(p) => match tokio::time::timeout(CLIENT_FIRST_WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => speak::reply(p, &name, &buf[..n]),
            Err(_) => format!("{name}\n").into_bytes(),
        },
        None => format!("{name}\n").into_bytes(),
    };
    if s.write_all(&first).await.is_err() {
        return;
    }
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// The ports a pod serves, by protocol.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    pub udp: Vec<u16>,
    /// SCTP ports (INIT answered with INIT ACK, see `sctp`).
    pub sctp: Vec<u16>,
}

/// Enters `netns`, makes the declared calls and serves forever, each port
/// speaking its protocol in `speak` (the rest answer a banner line). Call
/// before any other thread exists.
pub fn serve(
    netns: &Path,
    ports: &Ports,
    speak: &[(u16, AppProtocol)],
    name: &str,
    plan: CallPlan,
) -> Result<(), LabError> {
    let rt = crate::netns::runtime_in(netns)?;
    let (tcp, udp) = (&ports.tcp, &ports.udp);
    if !ports.sctp.is_empty() {
        let sctp = ports.sctp.clone();
        let netns = netns.to_path_buf();
        // Its own thread, entered into the pod's namespace like this one.
        std::thread::spawn(move || {
            if let Err(e) = crate::netns::enter(&netns).and_then(|()| crate::sctp::respond(sctp)) {
                eprintln!("sctp: {e}");
            }
        });
    }
    rt.block_on(async move {
        let mut tasks = Vec::new();
        if !plan.calls.is_empty() {
            crate::calls::run(plan.calls, plan.namespace, plan.interval).await;
            tasks.push(tokio::spawn(std::future::pending::<()>()));
        }
        for port in tcp {
            let listener = tokio::net::TcpListener::bind(("::", *port)).await.map_err(|source| LabError::Io {
                action: "binding tcp port",
                path: format!("{name}:{port}").into(),
                source,
            })?;
            let speaks = protocol_of(speak, *port);
            let name = name.to_string();
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Ok((s, _)) = listener.accept().await {
                        tokio::spawn(connection(s, name.clone(), speaks));
                    }
                }
            }));
        }
        for port in udp {
            let sock = tokio::net::UdpSocket::bind(("::", *port)).await.map_err(|source| LabError::Io {
                action: "binding udp port",
                path: format!("{name}:{port}").into(),
                source,
            })?;
            let speaks = protocol_of(speak, *port);
            let name = name.to_string();
            tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 65536];
                loop {
                    if let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                        let answer = match speaks {
                            Some(p) => speak::reply(p, &name, &buf[..n]),
                            None => buf[..n].to_vec(),
                        };
                        let _ = sock.send_to(&answer, peer).await;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    })
}
