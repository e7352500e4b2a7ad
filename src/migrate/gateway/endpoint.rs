//! `--endpoints URL[,URL…]`: each entry checked and parsed into an `Endpoint` (an http:// host
//! and port) before anything is contacted. Opens no connection and knows nothing of etcd's API.

/// One `--endpoints` entry: `http://host:port` (or `host:port`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub(super) host: String,
    pub(super) port: u16,
}

/// Parse `--endpoints URL[,URL…]`.
pub fn parse_endpoints(list: &str) -> Result<Vec<Endpoint>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("--endpoints {list:?}: an empty entry"));
        }
        out.push(parse_endpoint(item)?);
    }
    Ok(out)
}

fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("--endpoints: {url:?} {why}");
    if url.starts_with("https://") {
        return Err(bad(
            "uses https, which pykv does not speak: reach etcd over http on a trusted network \
             (or through a local TLS proxy)",
        ));
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return Err(bad("is not an http:// address"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('@') || authority.contains('?') {
        return Err(bad("must be http://host:port, without a path or user"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, port) = v6.split_once("]:").ok_or_else(|| bad("needs a port"))?;
            (host, port)
        }
        None => authority
            .rsplit_once(':')
            .ok_or_else(|| bad("needs a port (etcd's client port is usually 2379)"))?,
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("has a bad port"))?;
    if host.is_empty() {
        return Err(bad("needs a host"));
    }
    Ok(Endpoint {
        url: format!("http://{authority}"),
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_host_and_port() {
        let e =
            parse_endpoints("http://10.0.0.1:2379, node2:2379,http://[::1]:2379/").expect("valid");
        let urls: Vec<&str> = e.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://10.0.0.1:2379",
                "http://node2:2379",
                "http://[::1]:2379"
            ]
        );
        assert_eq!((e[2].host.as_str(), e[2].port), ("::1", 2379));
        for bad in [
            "https://a:2379",
            "http://a",
            "http://a:0",
            "http://a:2379/v3",
            "a:2379,,b:2379",
            "ftp://a:1",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad} accepted");
        }
    }
}
