//! The tiny server every lab pod runs on each declared containerPort:
//! TCP answers one line and closes; UDP echoes each datagram. The same
//! process makes the pod's declared calls.

use std::path::Path;

use crate::error::LabError;

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

/// Enters `netns`, makes the declared calls and serves forever. Call before
/// any other thread exists.
pub fn serve(netns: &Path, tcp: &[u16], udp: &[u16], name: &str, plan: CallPlan) -> Result<(), LabError> {
    let rt = crate::netns::runtime_in(netns)?;
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
            let banner = format!("{name}\n");
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Ok((mut s, _)) = listener.accept().await {
                        let banner = banner.clone();
                        tokio::spawn(async move {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let _ = s.write_all(banner.as_bytes()).await;
                            let mut buf = [0u8; 4096];
                            // Echo until the client closes, so long-lived test connections work too.
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        });
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
            tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 65536];
                loop {
                    if let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                        let _ = sock.send_to(&buf[..n], peer).await;
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
