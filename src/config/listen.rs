//! `listen` as people write it: `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`, or `:8080`
//! for every interface. No name lookups: `localhost` is 127.0.0.1, any other host name is
//! refused with what to write instead (a server should not bind where DNS said today).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The address to bind, or why `text` is not one.
pub fn parse(text: &str) -> Result<SocketAddr, String> {
    const FORMS: &str = "127.0.0.1:8080, localhost:8080, [::1]:8080, or :8080 for all interfaces";
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        if text.parse::<u16>().is_ok() {
            return Err(format!(
                "{text:?} is a port alone: write :{text} for all interfaces, or \
                 127.0.0.1:{text} for this machine only"
            ));
        }
        return Err(format!("{text:?} has no port: write it as {FORMS}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} in {text:?} is not a port (0 to 65535): write {FORMS}"))?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ if host.parse::<std::net::Ipv6Addr>().is_ok() => {
            return Err(format!(
                "{text:?}: an IPv6 address takes brackets, as in [{host}]:{port}"
            ))
        }
        _ => {
            return Err(format!(
                "{text:?}: {host:?} is not an IP address (host names other than localhost are \
                 not looked up): write {FORMS}"
            ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// How the log shows where the server listens: `0.0.0.0:8080 (all interfaces)`.
pub fn describe(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("{addr} (all interfaces)")
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_forms_parse() {
        let ok = |s: &str| parse(s).unwrap().to_string();
        assert_eq!(ok("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(ok("localhost:8080"), "127.0.0.1:8080");
        assert_eq!(ok(":8080"), "0.0.0.0:8080");
        assert_eq!(ok("[::1]:8080"), "[::1]:8080");
        assert_eq!(ok("0.0.0.0:0"), "0.0.0.0:0");
    }

    #[test]
    fn the_rest_says_what_to_write() {
        let err = |s: &str| parse(s).unwrap_err();
        assert!(
            err("8080").contains("write :8080 for all"),
            "{}",
            err("8080")
        );
        assert!(err("localhost").contains("has no port"));
        assert!(err("localhost:http").contains("is not a port"));
        assert!(err("localhost:70000").contains("is not a port"));
        assert!(err("pi.local:8080").contains("not looked up"));
        assert!(
            err("::1:8080").contains("takes brackets"),
            "{}",
            err("::1:8080")
        );
        assert_eq!(
            describe(parse(":80").unwrap()),
            "0.0.0.0:80 (all interfaces)"
        );
        assert_eq!(describe(parse("[::1]:80").unwrap()), "[::1]:80");
    }
}
