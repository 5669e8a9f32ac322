//! Where webhooks may be sent (OWASP API7, server-side request forgery):
//! `https` only, and never to an address inside the network — loopback,
//! private, link-local (cloud metadata at 169.254.169.254), carrier-grade
//! NAT, unique-local, multicast, unspecified, reserved, or an IPv6 form that
//! embeds one of those (IPv4-mapped and -compatible, NAT64, 6to4) —
//! checked when the URL is registered and again, after resolving the name,
//! at every delivery (so a name that later resolves inward, DNS rebinding,
//! gets nowhere: the connection goes to the address checked, see
//! [`CheckedResolver`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// What a deployment allows beyond the safe default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    pub allow_http: bool,
    pub allow_private_networks: bool,
}

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

fn v4_forbidden(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn v6_forbidden(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 is metadata)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local
        || (s[0..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0)) // IPv4-mapped, -compatible
        || (s[0] == 0x64 && s[1] == 0xff9b && v4_forbidden(embedded_v4(s[6], s[7]))) // NAT64
        || (s[0] == 0x2002 && v4_forbidden(embedded_v4(s[1], s[2]))) // 6to4
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
}

/// Whether an address is inside the network (never a webhook's target).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => v6_forbidden(v6),
    }
}

/// The literal address of a URL's host, if it is one.
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Checks a URL's form (scheme, host, no credentials) and, when its host is
/// an address, the address. Names are checked by [`check_resolved`].
pub fn check_form(raw: &str, policy: Policy) -> Result<reqwest::Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("A URL is at most {MAX_URL_LEN} characters."));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| format!("Not a valid URL: {e}."))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err("Only https URLs are accepted.".into()),
        _ => return Err("Only https URLs are accepted.".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("A webhook URL may not carry credentials.".into());
    }
    let host = url.host_str().ok_or("The URL has no host.")?;
    if let Some(ip) = literal(host)
        && forbidden(ip)
        && !policy.allow_private_networks
    {
        return Err(format!(
            "{ip} is a loopback, private, link-local or reserved address: webhooks go to public addresses only."
        ));
    }
    Ok(url)
}

/// The addresses a name resolves to, refused if any of them is inside the
/// network (unless allowed).
pub async fn resolve_checked(
    host: &str,
    port: u16,
    policy: Policy,
) -> Result<Vec<SocketAddr>, String> {
    if let Some(ip) = literal(host) {
        if forbidden(ip) && !policy.allow_private_networks {
            return Err(format!("{ip} is not a public address."));
        }
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host, port)),
    )
    .await
    .map_err(|_| format!("Resolving {host} timed out."))?
    .map_err(|_| format!("{host} does not resolve."))?;
    let addrs: Vec<SocketAddr> = lookup.collect();
    if addrs.is_empty() {
        return Err(format!("{host} does not resolve."));
    }
    if !policy.allow_private_networks
        && let Some(bad) = addrs.iter().find(|a| forbidden(a.ip()))
    {
        return Err(format!(
            "{host} resolves to {}, which is not a public address.",
            bad.ip()
        ));
    }
    Ok(addrs)
}

/// A URL checked whole: its form, then what its host resolves to now.
pub async fn check_url(raw: &str, policy: Policy) -> Result<reqwest::Url, String> {
    let url = check_form(raw, policy)?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    resolve_checked(&host, port, policy).await?;
    Ok(url)
}

/// The HTTP client's resolver: every name is resolved here and refused if
/// it points inside the network, so the connection goes only to an address
/// that was checked (a name that changes its answer between a check and the
/// connection cannot slip through).
pub struct CheckedResolver(pub Policy);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_checked(&host, 0, policy).await.map_err(
                |message| -> Box<dyn std::error::Error + Send + Sync> { message.into() },
            )?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_addresses_are_forbidden_and_public_ones_are_not() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn forms_are_checked_before_any_lookup() {
        let strict = Policy::default();
        for url in [
            "http://example.com/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://2130706433/",
            "not a url",
        ] {
            assert!(check_form(url, strict).is_err(), "{url}");
        }
        assert!(check_form("https://example.com/hook", strict).is_ok());
        let open = Policy {
            allow_http: true,
            allow_private_networks: true,
        };
        assert!(check_form("http://127.0.0.1:9/", open).is_ok());
    }
}
