//! A package index that shows the upstream registry as it stood before a date, so that pip can
//! resolve as of that date (uv has `--exclude-newer`; pip has nothing of the kind).
//!
//! A small HTTP server on 127.0.0.1 (a random port), started once per process on its own thread
//! ([`DatedIndex::shared`]), answers `/<YYYY-MM-DD>/simple/<project>/` with a PEP 503 HTML page.
//! For each project it asks the upstream index (`PIP_INDEX_URL`, else PyPI) for its PEP 691
//! JSON page, keeps the files whose PEP 700 `upload-time` is strictly before the date's
//! 00:00:00Z (files without one are left out), and lists them with their hash, their
//! `data-requires-python` and `data-yanked`: what every pip from 9 to 26 reads. The date is in
//! the path, so pip's HTTP cache never mixes two dates. Upstream pages are kept in memory for
//! the life of the process (a dated page does not change).
//!
//! An upstream 404 is answered 404. An upstream that errors or does not speak PEP 691 is
//! answered 502 with a plain-text reason; pip shows only the status (with `-v`), so the reason is
//! also kept for the build log ([`DatedIndex::problems_since`]).
//!
//! What this cannot filter: `PIP_FIND_LINKS` and `PIP_EXTRA_INDEX_URL` are searched by pip
//! besides the index ([`bypasses`] names them for the build log).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::EnvError;

/// The index asked when `PIP_INDEX_URL` is not set.
pub const DEFAULT_UPSTREAM: &str = "https://pypi.org/simple/";
/// PEP 691's JSON form of a project page.
const JSON_TYPE: &str = "application/vnd.pypi.simple.v1+json";
/// Upstream failures kept for build logs.
const MAX_PROBLEMS: usize = 64;

/// A running dated index. Dropping it stops the server (the shared one lives as long as the
/// process).
pub struct DatedIndex {
    base: String,
    state: Arc<State>,
    server: Arc<tiny_http::Server>,
}

struct State {
    upstream: Url,
    client: reqwest::blocking::Client,
    /// Per normalized project name; a cell being filled makes concurrent requests for the same
    /// project (pip retrying after its timeout) wait for one fetch. Failures are not kept.
    pages: Mutex<HashMap<String, Arc<PageCell>>>,
    problems: Mutex<Vec<(Instant, String)>>,
}

/// A project's page once fetched (or why it could not be).
type PageCell = OnceLock<Result<Arc<Page>, String>>;

enum Page {
    Found(Vec<DistFile>),
    Missing,
}

/// One file of a project page, as the upstream index describes it.
#[derive(Debug, Clone, PartialEq)]
struct DistFile {
    filename: String,
    /// Absolute, with `#<hash name>=<hex>` when the index gave a hash.
    url: String,
    requires_python: Option<String>,
    /// `Some("")` when yanked without a reason.
    yanked: Option<String>,
    /// Seconds since the epoch, UTC.
    uploaded: Option<i64>,
}

impl DatedIndex {
    /// The process's dated index over [`upstream_from_env`], started on first use.
    pub fn shared() -> Result<&'static DatedIndex, EnvError> {
        static SHARED: OnceLock<Result<DatedIndex, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| DatedIndex::start(&upstream_from_env()))
            .as_ref()
            .map_err(|e| EnvError::Tool(format!("cannot start ponder's dated index: {e}")))
    }

    /// Starts a dated index over `upstream` (a simple index URL such as
    /// `https://pypi.org/simple/`) on a random port of 127.0.0.1.
    pub fn start(upstream: &str) -> Result<DatedIndex, String> {
        let mut upstream = upstream.trim().to_string();
        if !upstream.ends_with('/') {
            upstream.push('/');
        }
        let upstream =
            Url::parse(&upstream).map_err(|e| format!("bad upstream index {upstream:?}: {e}"))?;
        let server = tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or("the server has no IP address")?;
        let server = Arc::new(server);
        // The blocking client runs a runtime of its own; it is made (and lives) on the server's
        // thread, never in a caller's async context.
        let (tx, rx) = mpsc::channel();
        let serving = Arc::clone(&server);
        std::thread::Builder::new()
            .name("ponder-dated-index".into())
            .spawn(move || {
                let state = match client(&upstream) {
                    Ok(client) => Arc::new(State {
                        upstream,
                        client,
                        pages: Mutex::new(HashMap::new()),
                        problems: Mutex::new(Vec::new()),
                    }),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(Arc::clone(&state)));
                serve(&serving, &state);
            })
            .map_err(|e| format!("cannot start its thread: {e}"))?;
        let state = rx
            .recv()
            .map_err(|_| "its thread ended before it started".to_string())??;
        Ok(DatedIndex {
            base: format!("http://127.0.0.1:{port}"),
            state,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The index URL that resolves as of `date` (`YYYY-MM-DD`), for `PIP_INDEX_URL`.
    pub fn index_url(&self, date: &str) -> String {
        format!("{}/{}/simple/", self.base, date.trim())
    }

    /// The upstream index, without any password it carries.
    pub fn upstream(&self) -> String {
        redacted(&self.state.upstream)
    }

    /// Variables that make pip resolve through this index as of `date`: `PIP_INDEX_URL`, and
    /// 127.0.0.1 added to `NO_PROXY` when the host sets a proxy (which would not reach it).
    pub fn pip_env(&self, date: &str) -> Vec<(String, String)> {
        let mut env = vec![("PIP_INDEX_URL".to_string(), self.index_url(date))];
        let proxied = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
            .iter()
            .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
        if proxied {
            for key in ["NO_PROXY", "no_proxy"] {
                let value = match std::env::var(key) {
                    Ok(v) if !v.trim().is_empty() => format!("{v},127.0.0.1"),
                    _ => "127.0.0.1".to_string(),
                };
                env.push((key.to_string(), value));
            }
        }
        env
    }

    /// The reasons of the 502 answers given since `since`, without repeats, oldest first.
    pub fn problems_since(&self, since: Instant) -> Vec<String> {
        let problems = self
            .state
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = Vec::new();
        for (at, text) in problems.iter() {
            if *at >= since && !out.contains(text) {
                out.push(text.clone());
            }
        }
        out
    }
}

impl Drop for DatedIndex {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl std::fmt::Debug for DatedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatedIndex")
            .field("url", &self.base)
            .field("upstream", &self.upstream())
            .finish()
    }
}

/// The upstream the shared index asks: `PIP_INDEX_URL`, else [`DEFAULT_UPSTREAM`].
pub fn upstream_from_env() -> String {
    std::env::var("PIP_INDEX_URL")
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_UPSTREAM.to_string())
}

/// Host settings that make pip look beyond the index, so beyond the date: one line each, for
/// the build log.
pub fn bypasses() -> Vec<String> {
    ["PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"]
        .iter()
        .filter_map(|k| {
            let v = std::env::var(k).ok().filter(|v| !v.trim().is_empty())?;
            Some(format!(
                "{k}={v} is searched too, and what it offers is not filtered by the date"
            ))
        })
        .collect()
}

/// uv's `--exclude-newer` (and `UV_EXCLUDE_NEWER`) for a date: its first instant in UTC (uv
/// reads a bare date in local time).
pub fn exclude_newer(date: &str) -> String {
    format!("{}T00:00:00Z", date.trim())
}

/// PEP 503's normalized project name: runs of `-`, `_` and `.` become one `-`, lowercase.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// Seconds since the epoch of `YYYY-MM-DD` at 00:00:00Z; `None` unless it is a real date.
pub(crate) fn date_start(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&date[0..4])?;
    let month = digits(&date[5..7])?;
    let day = digits(&date[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of an ISO 8601 time as PEP 700 gives it
/// (`2018-12-10T02:37:41.396830Z`); an offset (`+01:00`) is honoured, none means UTC.
fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_ascii() || s.len() < 19 {
        return None;
    }
    let b = s.as_bytes();
    let day = date_start(&s[..10])?;
    if !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, m, sec) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest[1..].replace(':', "");
            if hm.len() != 4 {
                return None;
            }
            sign * (digits(&hm[..2])? * 3600 + digits(&hm[2..])? * 60)
        }
    };
    Some(day + h * 3600 + m * 60 + sec - offset)
}

fn client(upstream: &Url) -> Result<reqwest::blocking::Client, String> {
    static TLS: std::sync::Once = std::sync::Once::new();
    TLS.call_once(|| {
        // rustls needs one process-wide provider (ring, as ponder-llm installs); installing
        // twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut builder = reqwest::blocking::Client::builder()
        .user_agent(concat!("ponder-dated-index/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(300));
    if matches!(
        upstream.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]")
    ) {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

fn serve(server: &tiny_http::Server, state: &Arc<State>) {
    for request in server.incoming_requests() {
        let state = Arc::clone(state);
        // One thread per request: an upstream fetch can take seconds, and builds run in
        // parallel.
        let spawned = std::thread::Builder::new()
            .name("ponder-dated-index-request".into())
            .spawn(move || respond(&state, request));
        if spawned.is_err() {
            // Out of threads: the request was moved into the failed closure and is dropped,
            // which closes its connection; pip retries.
            continue;
        }
    }
}

/// An answer: status, content type, body.
type Answer = (u16, &'static str, String);

fn respond(state: &State, request: tiny_http::Request) {
    let (status, content_type, body) = match request.method() {
        tiny_http::Method::Get | tiny_http::Method::Head => answer(state, request.url()),
        _ => (
            405,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
        ),
    };
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
        .expect("a valid header");
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header);
    let _ = request.respond(response);
}

fn answer(state: &State, path: &str) -> Answer {
    const TEXT: &str = "text/plain; charset=utf-8";
    let path = path.split(['?', '#']).next().unwrap_or("");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let [date, "simple", project] = parts[..] else {
        return (
            404,
            TEXT,
            "not found: ponder's dated index serves /<YYYY-MM-DD>/simple/<project>/\n".into(),
        );
    };
    let Some(cutoff) = date_start(date) else {
        return (400, TEXT, format!("{date:?} is not a date (YYYY-MM-DD)\n"));
    };
    let project = normalize(project);
    if project.is_empty() {
        return (404, TEXT, "no project named\n".into());
    }
    match state.page(&project) {
        Ok(page) => match page.as_ref() {
            Page::Found(files) => (
                200,
                "text/html; charset=utf-8",
                render(&project, files, cutoff),
            ),
            Page::Missing => (
                404,
                TEXT,
                format!("{} has no project {project}\n", redacted(&state.upstream)),
            ),
        },
        Err(why) => {
            let message = format!(
                "ponder's dated index cannot list {project} as of {date}: {why}. Resolving as of \
                 a date needs an upstream index that supports PEP 691 (JSON pages) and PEP 700 \
                 (upload times), as https://pypi.org/simple/ does; point PIP_INDEX_URL at one, or \
                 resolve without a date."
            );
            state.problem(&message);
            (502, TEXT, message + "\n")
        }
    }
}

impl State {
    fn page(&self, project: &str) -> Result<Arc<Page>, String> {
        let cell = {
            let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(pages.entry(project.to_string()).or_default())
        };
        let result = cell
            .get_or_init(|| self.fetch(project).map(Arc::new))
            .clone();
        if result.is_err() {
            let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
            if pages.get(project).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                pages.remove(project);
            }
        }
        result
    }

    fn fetch(&self, project: &str) -> Result<Page, String> {
        let shown = redacted(&self.upstream);
        let url = self
            .upstream
            .join(&format!("{project}/"))
            .map_err(|e| format!("cannot make the URL of {project} under {shown}: {e}"))?;
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, JSON_TYPE)
            .send()
            .map_err(|e| format!("{shown} could not be reached ({e})"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Ok(Page::Missing);
        }
        if !status.is_success() {
            return Err(format!("{shown} answered {status}"));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(JSON_TYPE))
        {
            return Err(format!(
                "{shown} answered {content_type:?}, not PEP 691's {JSON_TYPE}"
            ));
        }
        let page_url = response.url().clone();
        let body = response
            .bytes()
            .map_err(|e| format!("reading {shown}'s page failed ({e})"))?;
        let files = parse_page(&body, &page_url).map_err(|e| format!("{shown} {e}"))?;
        Ok(Page::Found(files))
    }

    fn problem(&self, text: &str) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if problems.len() >= MAX_PROBLEMS {
            problems.remove(0);
        }
        problems.push((Instant::now(), text.to_string()));
    }
}

/// The files of a PEP 691 project page; relative file URLs are resolved against `page_url`.
fn parse_page(body: &[u8], page_url: &Url) -> Result<Vec<DistFile>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("sent a page that is not JSON ({e})"))?;
    let Some(files) = json.get("files").and_then(|f| f.as_array()) else {
        return Err("sent a page without a files list".into());
    };
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let (Some(filename), Some(href)) = (
            f.get("filename").and_then(|v| v.as_str()),
            f.get("url").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let Ok(mut url) = page_url.join(href) else {
            continue;
        };
        if let Some((name, hex)) = pick_hash(f.get("hashes")) {
            url.set_fragment(Some(&format!("{name}={hex}")));
        }
        let yanked = match f.get("yanked") {
            Some(serde_json::Value::Bool(true)) => Some(String::new()),
            Some(serde_json::Value::String(reason)) => Some(reason.clone()),
            _ => None,
        };
        out.push(DistFile {
            filename: filename.to_string(),
            url: url.to_string(),
            requires_python: f
                .get("requires-python")
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            yanked,
            uploaded: f
                .get("upload-time")
                .and_then(|v| v.as_str())
                .and_then(parse_timestamp),
        });
    }
    if !out.is_empty() && out.iter().all(|f| f.uploaded.is_none()) {
        return Err("gives no upload times (PEP 700)".into());
    }
    Ok(out)
}

/// The hash pip should check: sha256 when given, else the strongest other one pip knows.
fn pick_hash(hashes: Option<&serde_json::Value>) -> Option<(&'static str, String)> {
    let hashes = hashes?.as_object()?;
    ["sha256", "sha512", "sha384", "sha224", "sha1", "md5"]
        .into_iter()
        .find_map(|name| {
            let hex = hashes.get(name)?.as_str()?;
            (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (name, hex.to_ascii_lowercase()))
        })
}

/// The PEP 503 page of `project` with the files uploaded before `cutoff`.
fn render(project: &str, files: &[DistFile], cutoff: i64) -> String {
    let name = escape(project);
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" \
         content=\"1.0\">\n<title>Links for {name}</title>\n</head>\n<body>\n\
         <h1>Links for {name}</h1>\n"
    );
    for f in files {
        if f.uploaded.is_none_or(|t| t >= cutoff) {
            continue;
        }
        html.push_str(&format!("<a href=\"{}\"", escape(&f.url)));
        if let Some(rp) = &f.requires_python {
            html.push_str(&format!(" data-requires-python=\"{}\"", escape(rp)));
        }
        if let Some(reason) = &f.yanked {
            html.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
        }
        html.push_str(&format!(">{}</a><br>\n", escape(&f.filename)));
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn dates_and_times() {
        assert_eq!(date_start("1970-01-01"), Some(0));
        assert_eq!(date_start("2019-01-01"), Some(1_546_300_800));
        assert_eq!(date_start("2024-02-29"), Some(1_709_164_800));
        for bad in [
            "2023-02-29",
            "2019-13-01",
            "2019-00-10",
            "2019-1-01",
            "Jan 2019",
            "",
        ] {
            assert_eq!(date_start(bad), None, "{bad}");
        }
        let t = parse_timestamp("2018-12-10T02:37:41.396830Z").unwrap();
        assert_eq!(t, 1_544_409_461);
        assert_eq!(parse_timestamp("2018-12-10T02:37:41Z"), Some(t));
        assert_eq!(parse_timestamp("2018-12-10 02:37:41"), Some(t));
        assert_eq!(parse_timestamp("2018-12-10T03:37:41+01:00"), Some(t));
        assert_eq!(parse_timestamp("2018-12-09T21:37:41.5-0500"), Some(t));
        for bad in [
            "2018-12-10",
            "2018-12-10T25:00:00Z",
            "2018-12-10T02:37:41.Z",
            "x",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(exclude_newer(" 2024-11-01"), "2024-11-01T00:00:00Z");
    }

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(normalize("Django"), "django");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("Foo__Bar-.baz"), "foo-bar-baz");
    }

    fn file(name: &str, uploaded: Option<&str>) -> DistFile {
        DistFile {
            filename: name.into(),
            url: format!("https://files.example/{name}#sha256=ab"),
            requires_python: None,
            yanked: None,
            uploaded: uploaded.map(|t| parse_timestamp(t).unwrap()),
        }
    }

    #[test]
    fn the_page_lists_files_before_the_cutoff_with_escaped_attributes() {
        let cutoff = date_start("2019-01-01").unwrap();
        let mut old = file("six-1.12.0.tar.gz", Some("2018-12-10T02:37:41Z"));
        old.requires_python = Some(">=2.7, !=3.0.*, <4 & \"x\"".into());
        let mut yanked = file("six-1.11.0.tar.gz", Some("2017-09-17T18:46:53Z"));
        yanked.yanked = Some("broken <metadata>".into());
        let mut silently = file("six-1.10.0.tar.gz", Some("2015-10-06T00:00:00Z"));
        silently.yanked = Some(String::new());
        let files = vec![
            old,
            yanked,
            silently,
            // The first instant of the cutoff day is not before it.
            file("six-1.13.0.tar.gz", Some("2019-01-01T00:00:00Z")),
            file("six-1.12.1.tar.gz", Some("2018-12-31T23:59:59.999Z")),
            file("six-0.9.tar.gz", None),
        ];
        let html = render("six", &files, cutoff);
        assert!(html.contains(
            "<a href=\"https://files.example/six-1.12.0.tar.gz#sha256=ab\" \
             data-requires-python=\"&gt;=2.7, !=3.0.*, &lt;4 &amp; &quot;x&quot;\">\
             six-1.12.0.tar.gz</a>"
        ));
        assert!(html.contains(" data-yanked=\"broken &lt;metadata&gt;\">six-1.11.0.tar.gz</a>"));
        assert!(html.contains(" data-yanked=\"\">six-1.10.0.tar.gz</a>"));
        assert!(html.contains(">six-1.12.1.tar.gz</a>"));
        assert!(!html.contains("six-1.13.0"), "{html}");
        assert!(!html.contains("six-0.9"), "{html}");
        assert!(
            !html.contains("metadata="),
            "no metadata attributes: {html}"
        );
    }

    #[test]
    fn relative_urls_resolve_against_the_page_and_hashes_become_fragments() {
        let page = Url::parse("https://mirror.example/root/simple/six/").unwrap();
        let body = serde_json::json!({
            "meta": {"api-version": "1.1"},
            "name": "six",
            "files": [
                {"filename": "six-1.12.0.tar.gz", "url": "../../packages/six-1.12.0.tar.gz",
                 "hashes": {"sha256": "D16A0141EC1A18405CD4CE8B4613101DA75DA0E9A7AEC5BDD4FA804D0E0EBA73"},
                 "requires-python": ">=2.7", "yanked": false,
                 "upload-time": "2018-12-10T02:37:41.396830Z"},
                {"filename": "six-1.13.0.tar.gz", "url": "/abs/six-1.13.0.tar.gz",
                 "hashes": {"md5": "abc", "sha512": "ff"}, "yanked": "bad build",
                 "upload-time": "2019-11-05T00:00:00Z"},
                {"filename": "six-1.0.tar.gz", "url": "https://other.example/six-1.0.tar.gz",
                 "hashes": {}}
            ]
        });
        let files = parse_page(body.to_string().as_bytes(), &page).unwrap();
        assert_eq!(
            files[0].url,
            "https://mirror.example/root/packages/six-1.12.0.tar.gz#sha256=\
             d16a0141ec1a18405cd4ce8b4613101da75da0e9a7aec5bdd4fa804d0e0eba73"
        );
        assert_eq!(files[0].requires_python.as_deref(), Some(">=2.7"));
        assert_eq!(files[0].yanked, None);
        assert_eq!(
            files[1].url,
            "https://mirror.example/abs/six-1.13.0.tar.gz#sha512=ff"
        );
        assert_eq!(files[1].yanked.as_deref(), Some("bad build"));
        assert_eq!(files[2].url, "https://other.example/six-1.0.tar.gz");
        assert_eq!(files[2].uploaded, None);
        let undated = serde_json::json!({"files": [{"filename": "a.whl", "url": "a.whl"}]});
        assert!(
            parse_page(undated.to_string().as_bytes(), &page)
                .unwrap_err()
                .contains("PEP 700")
        );
    }

    /// A real local upstream: answers `html_only` pages as HTML (a PEP 503-only index),
    /// otherwise PEP 691 JSON for `six` and 404 for anything else.
    fn upstream(html_only: bool) -> (String, std::thread::JoinHandle<()>, Arc<tiny_http::Server>) {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let serving = Arc::clone(&server);
        let handle = std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let (status, ctype, body) = if html_only {
                    (
                        200,
                        "text/html",
                        "<a href=\"six-1.0.tar.gz\">six-1.0.tar.gz</a>".into(),
                    )
                } else if request.url() == "/simple/six/" {
                    let body = serde_json::json!({
                        "meta": {"api-version": "1.1"},
                        "name": "six",
                        "files": [
                            {"filename": "six-1.12.0.tar.gz",
                             "url": "../../files/six-1.12.0.tar.gz",
                             "hashes": {"sha256": "aa"},
                             "requires-python": ">=2.7, !=3.0.*",
                             "upload-time": "2018-12-10T02:37:41.396830Z"},
                            {"filename": "six-1.13.0.tar.gz",
                             "url": "../../files/six-1.13.0.tar.gz",
                             "hashes": {"sha256": "bb"},
                             "upload-time": "2019-11-05T00:00:00Z"}
                        ]
                    });
                    (200, JSON_TYPE, body.to_string())
                } else {
                    (404, "text/plain", "no such project".to_string())
                };
                let header =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()).unwrap();
                let _ = request.respond(
                    tiny_http::Response::from_string(body)
                        .with_status_code(status)
                        .with_header(header),
                );
            }
        });
        (format!("http://127.0.0.1:{port}/simple"), handle, server)
    }

    fn get(url: &str) -> (u16, String, String) {
        let mut response = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap();
        let ctype = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let mut body = String::new();
        response.read_to_string(&mut body).unwrap();
        (response.status().as_u16(), ctype, body)
    }

    #[test]
    fn serves_dated_pages_from_a_json_upstream() {
        let (up, handle, server) = upstream(false);
        let index = DatedIndex::start(&up).unwrap();
        assert_eq!(index.upstream(), format!("{up}/"));
        let (status, ctype, html) = get(&format!("{}/2019-01-01/simple/Six/", index.url()));
        assert_eq!(status, 200, "{html}");
        assert!(ctype.starts_with("text/html"), "{ctype}");
        let port = up
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/simple");
        assert!(
            html.contains(&format!(
                "<a href=\"http://127.0.0.1:{port}/files/six-1.12.0.tar.gz#sha256=aa\" \
                 data-requires-python=\"&gt;=2.7, !=3.0.*\">six-1.12.0.tar.gz</a>"
            )),
            "{html}"
        );
        assert!(!html.contains("six-1.13.0"), "{html}");
        // Another date from the cached page.
        let (_, _, later) = get(&format!("{}/2020-01-01/simple/six", index.url()));
        assert!(later.contains("six-1.13.0.tar.gz</a>"), "{later}");
        assert_eq!(
            get(&format!("{}/2019-01-01/simple/nope/", index.url())).0,
            404
        );
        assert_eq!(
            get(&format!("{}/2019-13-01/simple/six/", index.url())).0,
            400
        );
        assert_eq!(get(&format!("{}/simple/six/", index.url())).0, 404);
        assert!(
            index
                .problems_since(Instant::now() - Duration::from_secs(60))
                .is_empty()
        );
        drop(index);
        server.unblock();
        handle.join().unwrap();
    }

    #[test]
    fn an_upstream_without_the_json_api_gets_a_502_that_says_why() {
        let (up, handle, server) = upstream(true);
        let index = DatedIndex::start(&up).unwrap();
        let before = Instant::now();
        let (status, ctype, body) = get(&format!("{}/2019-01-01/simple/six/", index.url()));
        assert_eq!(status, 502);
        assert!(ctype.starts_with("text/plain"), "{ctype}");
        assert!(
            body.contains(&format!("{up}/")),
            "names the upstream: {body}"
        );
        assert!(
            body.contains("PEP 691") && body.contains("PEP 700"),
            "{body}"
        );
        assert!(body.contains("\"text/html\""), "{body}");
        let problems = index.problems_since(before);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(format!("{}\n", problems[0]), body);
        drop(index);
        server.unblock();
        handle.join().unwrap();
    }

    #[test]
    fn an_unreachable_upstream_gets_a_502() {
        // A port nobody listens on: bind one and let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let index = DatedIndex::start(&format!("http://127.0.0.1:{port}/simple/")).unwrap();
        let (status, _, body) = get(&format!("{}/2019-01-01/simple/six/", index.url()));
        assert_eq!(status, 502);
        assert!(body.contains("could not be reached"), "{body}");
    }
}
