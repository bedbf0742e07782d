//! How Trove endpoints reach each other: the network mode (relays, address
//! lookup, LAN discovery), the bound address, and node tickets.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use iroh::endpoint::{presets, IdleTimeout, QuicTransportConfig};
use iroh::{Endpoint, EndpointAddr, RelayMap, RelayMode, RelayUrl, SecretKey, TransportAddr};
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use n0_future::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::NodeError;

/// The mDNS service name Trove nodes announce themselves under, so that
/// discovery lists Trove nodes and not every iroh program on the LAN.
const MDNS_SERVICE: &str = "trove-node";

/// Which of iroh's ways to find and reach peers are switched on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Relays, internet address lookup by node id (n0's DNS), and LAN
    /// discovery: works across NATs and the internet.
    #[default]
    Internet,
    /// LAN discovery (mDNS) and the addresses in tickets; nothing leaves the
    /// local network.
    Lan,
    /// Only the addresses in tickets: no relay, no lookup, no multicast.
    /// Every test runs in this mode.
    Direct,
}

impl FromStr for NetworkMode {
    type Err = NodeError;
    fn from_str(s: &str) -> Result<Self, NodeError> {
        match s {
            "internet" => Ok(Self::Internet),
            "lan" => Ok(Self::Lan),
            "direct" => Ok(Self::Direct),
            other => Err(NodeError::Usage(format!(
                "network mode `{other}`: use internet, lan or direct"
            ))),
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Internet => "internet",
            Self::Lan => "lan",
            Self::Direct => "direct",
        })
    }
}

/// Network settings of one endpoint (an owner's client or a node).
#[derive(Clone, Debug, Default)]
pub struct NetworkConfig {
    pub mode: NetworkMode,
    /// A relay of one's own instead of n0's public relays (internet mode).
    pub relay: Option<String>,
    /// The UDP address to bind; all interfaces on a random port if unset.
    pub bind: Option<SocketAddr>,
}

/// How long an idle connection lives; keep-alives keep used ones open, and
/// a vanished peer is noticed within this time even mid-transfer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const KEEP_ALIVE: Duration = Duration::from_secs(3);

impl NetworkConfig {
    /// Settings from `TROVE_NETWORK`, `TROVE_RELAY` and `TROVE_BIND`.
    pub fn from_env() -> Result<Self, NodeError> {
        let mode = match std::env::var("TROVE_NETWORK") {
            Ok(s) if !s.is_empty() => s.parse()?,
            _ => NetworkMode::default(),
        };
        let relay = std::env::var("TROVE_RELAY").ok().filter(|s| !s.is_empty());
        let bind =
            match std::env::var("TROVE_BIND") {
                Ok(s) if !s.is_empty() => Some(s.parse().map_err(|_| {
                    NodeError::Usage(format!("TROVE_BIND `{s}` is not an ADDR:PORT"))
                })?),
                _ => None,
            };
        Ok(Self { mode, relay, bind })
    }

    /// Bind an endpoint with `secret` as its identity, accepting `alpns`.
    /// Nodes `advertise` themselves on the LAN; owners only look.
    pub async fn bind(
        &self,
        secret: SecretKey,
        alpns: Vec<Vec<u8>>,
        advertise: bool,
    ) -> Result<Endpoint, NodeError> {
        let transport = QuicTransportConfig::builder()
            .max_idle_timeout(Some(
                IdleTimeout::try_from(IDLE_TIMEOUT).expect("10 s fits a QUIC idle timeout"),
            ))
            .keep_alive_interval(KEEP_ALIVE)
            .build();
        let mut builder = match self.mode {
            NetworkMode::Internet => {
                let b = Endpoint::builder(presets::N0);
                match &self.relay {
                    Some(url) => {
                        let url: RelayUrl = url.parse().map_err(|e| {
                            NodeError::Usage(format!("relay `{url}` is not a URL: {e}"))
                        })?;
                        b.relay_mode(RelayMode::Custom(RelayMap::from(url)))
                    }
                    None => b,
                }
            }
            NetworkMode::Lan | NetworkMode::Direct => Endpoint::builder(presets::Minimal),
        };
        if self.mode != NetworkMode::Direct {
            builder = builder.address_lookup(
                MdnsAddressLookup::builder()
                    .service_name(MDNS_SERVICE)
                    .advertise(advertise),
            );
        }
        if let Some(addr) = self.bind {
            builder = builder
                .clear_ip_transports()
                .bind_addr(addr)
                .map_err(|e| NodeError::Usage(format!("cannot bind {addr}: {e}")))?;
        }
        builder
            .secret_key(secret)
            .alpns(alpns)
            .transport_config(transport)
            .bind()
            .await
            .map_err(|e| NodeError::Network(format!("cannot open the network endpoint: {e}")))
    }
}

/// Listen on the LAN for `wait` and return the tickets of the Trove nodes
/// that announced themselves (over mDNS).
pub async fn discover(wait: Duration) -> Result<Vec<NodeTicket>, NodeError> {
    let endpoint = Endpoint::builder(presets::Minimal)
        .bind()
        .await
        .map_err(|e| NodeError::Network(format!("cannot open the network endpoint: {e}")))?;
    let mdns = MdnsAddressLookup::builder()
        .service_name(MDNS_SERVICE)
        .advertise(false)
        .build(endpoint.id())
        .map_err(|e| NodeError::Network(format!("LAN discovery is not available here: {e}")))?;
    let mut events = mdns.subscribe().await;
    let mut found: std::collections::BTreeMap<[u8; 32], NodeTicket> = Default::default();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.next()).await {
        match ev {
            DiscoveryEvent::Discovered { endpoint_info, .. } => {
                let addr = endpoint_info.into_endpoint_addr();
                found.insert(*addr.id.as_bytes(), NodeTicket::of(&addr));
            }
            DiscoveryEvent::Expired { endpoint_id } => {
                found.remove(endpoint_id.as_bytes());
            }
            _ => {}
        }
    }
    endpoint.close().await;
    Ok(found.into_values().collect())
}

/// Everything an owner needs to reach a node: its id (public key) and the
/// addresses it listens on. Text form: `trovenode1` + base32 of the postcard
/// encoding; the `1` is the ticket format version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTicket {
    pub node: [u8; 32],
    pub addrs: Vec<SocketAddr>,
    pub relay: Option<String>,
}

const TICKET_PREFIX: &str = "trovenode1";

impl NodeTicket {
    /// The node id as hex, the form `trove node status` and logs show.
    pub fn node_hex(&self) -> String {
        hex::encode(self.node)
    }

    /// The iroh address to dial.
    pub fn endpoint_addr(&self) -> Result<EndpointAddr, NodeError> {
        let id = iroh::PublicKey::from_bytes(&self.node)
            .map_err(|_| NodeError::Usage("the ticket's node id is not a valid key".into()))?;
        let mut addrs: Vec<TransportAddr> =
            self.addrs.iter().map(|a| TransportAddr::Ip(*a)).collect();
        if let Some(r) = &self.relay {
            if let Ok(url) = r.parse::<RelayUrl>() {
                addrs.push(TransportAddr::Relay(url));
            }
        }
        Ok(EndpointAddr::from_parts(id, addrs))
    }

    /// The ticket for an endpoint as it is now.
    pub fn of(addr: &EndpointAddr) -> Self {
        Self {
            node: *addr.id.as_bytes(),
            addrs: addr.ip_addrs().copied().collect(),
            relay: addr.relay_urls().next().map(|u| u.to_string()),
        }
    }
}

impl fmt::Display for NodeTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        write!(
            f,
            "{TICKET_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
        )
    }
}

impl FromStr for NodeTicket {
    type Err = NodeError;
    fn from_str(s: &str) -> Result<Self, NodeError> {
        let bad = |why: &str| {
            NodeError::Usage(format!(
                "`{}` is not a node ticket ({why}); ask the node's operator for the output of `trove node ticket`",
                s.chars().take(24).collect::<String>()
            ))
        };
        let body = s
            .trim()
            .strip_prefix(TICKET_PREFIX)
            .ok_or_else(|| bad("it should start with trovenode1"))?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_uppercase().as_bytes())
            .map_err(|_| bad("damaged text"))?;
        let t: NodeTicket = postcard::from_bytes(&bytes).map_err(|_| bad("damaged contents"))?;
        iroh::PublicKey::from_bytes(&t.node).map_err(|_| bad("invalid node id"))?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_reject_damage() {
        let key = SecretKey::from_bytes(&[7; 32]);
        let t = NodeTicket {
            node: *key.public().as_bytes(),
            addrs: vec![
                "127.0.0.1:4433".parse().unwrap(),
                "[::1]:9".parse().unwrap(),
            ],
            relay: Some("https://relay.example/".into()),
        };
        let s = t.to_string();
        assert!(s.starts_with("trovenode1"), "{s}");
        assert_eq!(s.parse::<NodeTicket>().unwrap(), t);
        assert_eq!(t.endpoint_addr().unwrap().ip_addrs().count(), 2);
        let mut damaged = s.clone();
        damaged.truncate(s.len() - 3);
        assert!(damaged.parse::<NodeTicket>().is_err());
        assert!("dir:/tmp".parse::<NodeTicket>().is_err());
        assert!(s
            .to_uppercase()
            .replace("TROVENODE1", "trovenode1")
            .parse::<NodeTicket>()
            .is_ok());
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            "direct".parse::<NetworkMode>().unwrap(),
            NetworkMode::Direct
        );
        assert!("wan".parse::<NetworkMode>().is_err());
    }
}
