//! A stand-in for the parts of the internet some repositories' test suites call, so that their
//! tests grade offline as they grade in the harness's containers (which can reach the internet).
//!
//! requests' suite is the case in SWE-bench: it sends real requests to httpbin.org over HTTP and
//! HTTPS, and checks that a connect to an unroutable address times out. Inside the sandbox's own
//! network namespace (nothing leaves it) ponder starts httpbin, the same WSGI app the real site
//! runs, under gunicorn on ports 80 and 443, points the host names at 127.0.0.1 with a stand-in
//! `/etc/hosts`, adds a self-signed certificate for those names to the CA bundle the code under
//! test reads, and routes the unroutable address into a veth pair whose other end never answers,
//! so a connect hangs as it does on the internet instead of being refused at once. Configuring the
//! namespace needs `CAP_NET_ADMIN`, which the setup script drops before the test command starts.
//!
//! What a repository needs is data ([`Fixture`]); a repository without an entry gets nothing.

use anyhow::{Context, Result, bail};
use ponder_env::EnvStore;
use ponder_sandbox::{CommandSpec, Policy, Sandbox};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one repository's tests expect to find on the internet.
#[derive(Debug)]
pub struct Fixture {
    pub repo: &'static str,
    /// Host names served by the local httpbin over HTTP (80) and HTTPS (443).
    pub hosts: &'static [&'static str],
    /// IPv4 addresses whose connects must hang (tests of connect timeouts).
    pub unroutable: &'static [&'static str],
    /// Variables the test command gets.
    pub env: &'static [(&'static str, &'static str)],
    /// Python code, run with the environment's interpreter in the checkout, that prints the CA
    /// bundle the code under test verifies with; the certificate is added to that file.
    pub ca_bundle_query: Option<&'static str>,
}

/// The repositories that need one. requests' tests read `HTTPBIN_URL` (newer versions) or
/// call httpbin.org directly (older ones), and expect `10.255.255.1` to time out.
pub const FIXTURES: &[Fixture] = &[Fixture {
    repo: "psf/requests",
    hosts: &["httpbin.org", "www.httpbin.org", "www.google.co.uk"],
    unroutable: &["10.255.255.1"],
    env: &[("HTTPBIN_URL", "http://httpbin.org/")],
    ca_bundle_query: Some("import requests.certs as c; print(c.where())"),
}];

/// The httpbin server, pinned so that every run answers alike.
const HTTPBIN_REQUIREMENTS: &[&str] = &[
    "httpbin==0.10.4",
    "flask==3.1.3",
    "werkzeug==3.1.9",
    "gunicorn==23.0.0",
];

/// Part of test-run cache keys: bumped when what the stand-in serves changes.
pub const STAND_IN_VERSION: &str = "httpbin-0.10.4/gunicorn-23.0.0/1";

/// How long the servers may take to accept connections before the run is abandoned.
const READY_SECONDS: u32 = 30;

pub fn fixture_for(repo: &str) -> Option<&'static Fixture> {
    FIXTURES.iter().find(|f| f.repo == repo)
}

/// A fixture made ready: the server's environment, the certificate and the hosts file.
#[derive(Debug)]
pub struct StandIn {
    pub fixture: &'static Fixture,
    /// The tool folder holding `venv/` with httpbin and gunicorn.
    tool_dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    hosts_file: PathBuf,
}

/// Stand-ins prepared in this run, one per repository, made on first use. A failure is kept
/// too, so that it is reported once per instance rather than retried by every worker.
#[derive(Default)]
pub struct StandIns {
    ready: Mutex<HashMap<&'static str, Result<Arc<StandIn>, String>>>,
}

impl StandIns {
    /// The stand-in for `fixture`, built under `dir` on first use.
    pub fn get(
        &self,
        fixture: &'static Fixture,
        envs: &EnvStore,
        dir: &Path,
    ) -> Result<Arc<StandIn>, String> {
        // Held while building, so concurrent workers wait for one build instead of racing.
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        ready
            .entry(fixture.repo)
            .or_insert_with(|| {
                StandIn::prepare(fixture, envs, dir)
                    .map(Arc::new)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
    }
}

/// Why the stand-in cannot be used in `sandbox`, if it cannot.
pub fn unsupported(sandbox: &Sandbox) -> Option<String> {
    if !sandbox.can_add_capabilities() {
        return Some(
            "the stand-in internet needs bubblewrap run as root (it configures the sandbox's \
             network namespace)"
                .to_owned(),
        );
    }
    for tool in ["ip", "setpriv"] {
        if which(tool).is_none() {
            return Some(format!(
                "the stand-in internet needs `{tool}` (scripts/setup.sh installs iproute2 and \
                 util-linux)"
            ));
        }
    }
    None
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl StandIn {
    /// Builds (or reuses) the httpbin environment among ponder's tools and writes the
    /// certificate, its key and the hosts file into `dir`, once.
    pub fn prepare(fixture: &'static Fixture, envs: &EnvStore, dir: &Path) -> Result<StandIn> {
        let tool_dir = envs
            .tool(
                "httpbin",
                HTTPBIN_REQUIREMENTS,
                &[
                    "-c",
                    "import httpbin, gunicorn; print(gunicorn.__version__)",
                ],
                Duration::from_secs(15 * 60),
            )
            .context("cannot install httpbin for the stand-in internet")?;
        let dir = dir.join(fixture.repo.replace('/', "__"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let (cert, key, hosts_file) =
            (dir.join("cert.pem"), dir.join("key.pem"), dir.join("hosts"));
        if !(cert.is_file() && key.is_file()) {
            let (cert_pem, key_pem) = self_signed(fixture.hosts)?;
            // Key first: a cert without its key must never look complete.
            write_atomic(&key, key_pem.as_bytes())?;
            write_atomic(&cert, cert_pem.as_bytes())?;
        }
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost\n");
        hosts.push_str(&format!("127.0.0.1 {}\n", fixture.hosts.join(" ")));
        write_atomic(&hosts_file, hosts.as_bytes())?;
        Ok(StandIn {
            fixture,
            tool_dir,
            cert,
            key,
            hosts_file,
        })
    }

    /// The CA bundle the code under test reads and the combined bundle (that one plus the
    /// stand-in's certificate) to bind over it, written into `scratch`. `None` when the fixture
    /// names no query.
    pub fn ca_bundle(
        &self,
        sandbox: &Sandbox,
        query_spec: CommandSpec,
        policy: Policy,
        scratch: &Path,
    ) -> Result<Option<(PathBuf, PathBuf)>> {
        let Some(query) = self.fixture.ca_bundle_query else {
            return Ok(None);
        };
        let mut spec = query_spec;
        spec.argv = vec!["python".to_owned(), "-c".to_owned(), query.to_owned()];
        let outcome = sandbox
            .run(&spec, &policy.timeout(Duration::from_secs(120)))
            .context("cannot ask the environment for its CA bundle")?;
        let answer = outcome
            .output
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_owned();
        let target = PathBuf::from(&answer);
        if !outcome.termination.success() || !target.is_absolute() || !target.is_file() {
            bail!(
                "the environment did not name its CA bundle (`{query}` printed: {})",
                outcome.output.trim()
            );
        }
        let mut bundle = std::fs::read(&target)
            .with_context(|| format!("cannot read the CA bundle {}", target.display()))?;
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend(std::fs::read(&self.cert)?);
        let combined = scratch.join("ponder-stand-in-ca.pem");
        write_atomic(&combined, &bundle)?;
        Ok(Some((combined, target)))
    }

    /// `policy` with what the setup script needs: `CAP_NET_ADMIN`, the hosts file, the
    /// server's files readable, and no network beyond the sandbox's own namespace.
    pub fn confine(&self, policy: Policy, ca: Option<&(PathBuf, PathBuf)>) -> Policy {
        let mut policy = policy
            .network(false)
            .capability("CAP_NET_ADMIN")
            .readable(self.tool_dir.clone())
            .readable(self.cert.parent().expect("has a folder").to_path_buf())
            .redirect(self.hosts_file.clone(), "/etc/hosts");
        if let Some((combined, target)) = ca {
            policy = policy.redirect(combined.clone(), target.clone());
        }
        policy
    }

    /// The variables the fixture sets for the test command.
    pub fn env(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.fixture
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    }

    /// The argument vector that runs the shell command `command` after the setup of the
    /// stand-in: the unroutable routes, httpbin on 80 and 443, a wait until both accept
    /// connections; the command then runs with `CAP_NET_ADMIN` dropped from every set.
    pub fn wrap(&self, command: &str) -> Vec<String> {
        let gunicorn = self.tool_dir.join("venv/bin/gunicorn");
        let python = self.tool_dir.join("venv/bin/python");
        let tool =
            |name: &str| which(name).map_or_else(|| name.to_owned(), |p| p.display().to_string());
        let mut script = format!("set -e\nip() {{ {} \"$@\"; }}\n", tool("ip"));
        for (i, address) in self.fixture.unroutable.iter().enumerate() {
            // A veth pair's far end has no address and answers nothing; with a permanent
            // neighbour entry no ARP is sent either, so the SYN just vanishes.
            script.push_str(&format!(
                "ip link add pdr{i}a type veth peer name pdr{i}b\n\
                 ip link set pdr{i}a up\nip link set pdr{i}b up\n\
                 ip route add {address}/32 dev pdr{i}a\n\
                 ip neigh replace {address} lladdr 02:00:00:00:00:0{} dev pdr{i}a nud permanent\n",
                i + 1
            ));
        }
        // The servers get a clean environment: the test environment's variables (PYTHONPATH,
        // warnings filters) are not theirs.
        let serve = |port: u16, tls: bool| {
            let tls = if tls {
                format!(
                    " --certfile {} --keyfile {}",
                    quote_path(&self.cert),
                    quote_path(&self.key)
                )
            } else {
                String::new()
            };
            format!(
                "env -i PATH=/usr/bin:/bin HOME=/tmp {} -k gthread --threads 16 -w 1 \
                 --log-level warning -b 127.0.0.1:{port}{tls} httpbin:app \
                 >>/tmp/ponder-httpbin.log 2>&1 &\n",
                quote_path(&gunicorn)
            )
        };
        script.push_str(&serve(80, false));
        script.push_str(&serve(443, true));
        script.push_str(&format!(
            "if ! env -i {} -c {} ; then\n\
             echo '[ponder] the stand-in internet did not start; its log:' >&2\n\
             cat /tmp/ponder-httpbin.log >&2\nexit 97\nfi\n",
            quote_path(&python),
            shell_quote(&wait_until_ready())
        ));
        script.push_str(&format!(
            "set +e\nexec {} --inh-caps=-net_admin --bounding-set=-net_admin -- \
                 bash -c \"$1\"\n",
            tool("setpriv")
        ));
        vec![
            "bash".to_owned(),
            "-c".to_owned(),
            script,
            "ponder-stand-in".to_owned(),
            command.to_owned(),
        ]
    }
}

/// Python that waits until 127.0.0.1:80 and :443 accept connections.
fn wait_until_ready() -> String {
    format!(
        "import socket, sys, time\n\
         deadline = time.time() + {READY_SECONDS}\n\
         for port in (80, 443):\n\
         \x20   while True:\n\
         \x20       try:\n\
         \x20           socket.create_connection(('127.0.0.1', port), 1).close()\n\
         \x20           break\n\
         \x20       except OSError:\n\
         \x20           if time.time() > deadline:\n\
         \x20               sys.exit(1)\n\
         \x20           time.sleep(0.05)\n"
    )
}

/// A self-signed certificate (a CA, so that old OpenSSL builds accept it as a trust anchor)
/// for `hosts`, and its key, in PEM.
fn self_signed(hosts: &[&str]) -> Result<(String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    let mut params =
        CertificateParams::new(names).context("invalid host name for the certificate")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        DnType::CommonName,
        hosts.first().copied().unwrap_or("ponder"),
    );
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn quote_path(path: &Path) -> String {
    shell_quote(&path.display().to_string())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_every_host() {
        let (cert, key) = self_signed(&["httpbin.org", "www.httpbin.org"]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
    }

    #[test]
    fn only_listed_repositories_get_a_stand_in() {
        assert!(fixture_for("psf/requests").is_some());
        assert!(fixture_for("pallets/flask").is_none());
    }
}
