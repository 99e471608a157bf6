//! The HTTP server: the routes, the listening address and its rule
//! (loopback unless `--allow-remote`), a check of the `Host` header that
//! keeps other web sites' pages from reaching a loopback server through
//! their own names (DNS rebinding), and the tokio runtime the server runs
//! on, of its own, so that nothing else in docmill needs one.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use docmill_protocol::exit_codes;

use super::catalog::Catalog;
use super::{document, error, files, live, search, App};
use crate::store;

/// The default address: loopback, a fixed port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8383";

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub db: PathBuf,
    pub listen: SocketAddr,
    /// Listening on an address other machines reach was asked for.
    pub allow_remote: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "{0} is reachable from other machines, and the index's text and files would be \
         too: listen on 127.0.0.1, or add --allow-remote"
    )]
    Remote(SocketAddr),
}

/// The listening rule: a loopback address, or any with `allow_remote`.
pub fn check_listen(addr: SocketAddr, allow_remote: bool) -> Result<(), ListenError> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(ListenError::Remote(addr))
    }
}

/// `docmill serve`: answers until the process is stopped.
pub fn command(opts: &ServeOptions) -> anyhow::Result<i32> {
    if let Err(e) = check_listen(opts.listen, opts.allow_remote) {
        eprintln!("docmill: {e}");
        return Ok(exit_codes::USAGE);
    }
    if store::is_postgres(&opts.db) {
        eprintln!("docmill: `serve` reads a SQLite index; the shared store has no web page yet");
        return Ok(exit_codes::USAGE);
    }
    let catalog = Catalog::open(opts.db.clone()).map_err(store::StoreError::from)?;
    let listener = TcpListener::bind(opts.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    let url = url_of(&listener)?;
    if !opts.listen.ip().is_loopback() {
        eprintln!(
            "docmill: warning: listening on {}: anyone who can reach this machine can read \
             the index and its files",
            opts.listen
        );
    }
    // The first line says where the page is, so that scripts can read it.
    let mut out = std::io::stdout().lock();
    writeln!(out, "docmill serve: {url}")?;
    out.flush()?;
    drop(out);
    run(catalog, listener, opts.allow_remote)?;
    Ok(exit_codes::OK)
}

/// Serves the same pages from a thread of the calling process (`docmill
/// index --serve`); returns the page's URL. The thread ends with the
/// process.
pub fn spawn(db: PathBuf, listen: SocketAddr, allow_remote: bool) -> anyhow::Result<String> {
    check_listen(listen, allow_remote)?;
    if store::is_postgres(&db) {
        anyhow::bail!("the web page reads a SQLite index; the shared store has none yet");
    }
    let catalog = Catalog::open(db).map_err(store::StoreError::from)?;
    let listener =
        TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let url = url_of(&listener)?;
    std::thread::Builder::new()
        .name("serve".into())
        .spawn(move || {
            if let Err(e) = run(catalog, listener, allow_remote) {
                tracing::warn!("the web page stopped: {e}");
            }
        })?;
    Ok(url)
}

fn url_of(listener: &TcpListener) -> anyhow::Result<String> {
    let addr = listener.local_addr()?;
    Ok(format!("http://{addr}/"))
}

/// Runs the server on its own runtime until the process ends.
fn run(catalog: Catalog, listener: TcpListener, allow_remote: bool) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("docmill-serve")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = router(App { catalog }, local, allow_remote);
        axum::serve(listener, app).await
    })?;
    Ok(())
}

/// The hosts a request may name: the address listened on, and for a
/// loopback one `localhost` too.
#[derive(Clone)]
struct Hosts {
    port: u16,
    ip: std::net::IpAddr,
    any: bool,
}

impl Hosts {
    fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let (name, port) = match host.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((name, rest)) => (name, rest.strip_prefix(':')),
                None => return false,
            },
            None => match host.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            },
        };
        let port = match port.map(str::parse::<u16>) {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return false,
            None => None,
        };
        if port.is_some_and(|p| p != self.port) {
            return false;
        }
        name.eq_ignore_ascii_case("localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == self.ip || ip.is_loopback())
    }
}

async fn check_host(State(hosts): State<Hosts>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !hosts.allows(host) {
        return (StatusCode::MISDIRECTED_REQUEST, "unknown host\n").into_response();
    }
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        // The files themselves are left to the browser's viewers.
        return response;
    }
    // Pages never load anything from elsewhere, and are never framed.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; \
             style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    response
}

fn router(app: App, local: SocketAddr, allow_remote: bool) -> Router {
    let hosts = Hosts {
        port: local.port(),
        ip: local.ip(),
        any: allow_remote,
    };
    Router::new()
        .route("/", get(search::handler))
        .route("/doc/{id}", get(document::handler))
        .route("/file/{id}", get(files::handler))
        .route("/run", get(live::handler))
        .route("/run/events", get(live::events))
        .route("/run/charts", get(live::charts_handler))
        .fallback(|| async { error::not_found() })
        .with_state(app)
        .layer(middleware::from_fn_with_state(hosts, check_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_the_flag() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        let all: SocketAddr = "0.0.0.0:8383".parse().unwrap();
        assert!(check_listen(lo, false).is_ok());
        assert!(check_listen(v6, false).is_ok());
        assert!(check_listen(all, false).is_err());
        assert!(check_listen(all, true).is_ok());
    }

    #[test]
    fn hosts_a_loopback_server_answers() {
        let h = Hosts {
            port: 8383,
            ip: "127.0.0.1".parse().unwrap(),
            any: false,
        };
        for ok in [
            "127.0.0.1:8383",
            "localhost:8383",
            "LOCALHOST",
            "[::1]:8383",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["evil.example:8383", "127.0.0.1:80", "", "10.0.0.1:8383"] {
            assert!(!h.allows(bad), "{bad}");
        }
    }
}
