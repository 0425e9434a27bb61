//! `imangor drill --url URL`: runs every attack class the detectors know against a running
//! deployment, with throw-away drill accounts and drill addresses, and checks and times each step
//! of the chain: the incident opened (right kind, level and subject, labelled `drill`), the
//! containment applied where the detector contains, the alert delivered (to a receiver the drill
//! starts, `--webhook-listen`), the audit trail holding the events with its chain intact, the
//! metric moved (`--metrics-url`). Then it resolves its incidents, lifts the blocks its traffic
//! set off, and disables its accounts (imangor deletes no account: the trail names them).
//!
//! Its traffic carries the drill header (`crypto::drill`, signed with IMANGOR_DRILL_KEY), so the
//! server gives it addresses of the drill range (`domain::net::DRILL_NETWORK`): every block it
//! sets off covers an address no real client has, and its incidents are labelled `drill` (never
//! the previous incident of a recurrence). The admin calls (accounts, incidents, audit) are
//! ordinary, authenticated requests.

use crate::domain::net::DRILL_EMAIL_DOMAIN;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::crypto::drill;
use crate::domain::Timestamp;
use crate::domain::incident::Level;

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// The deployment's base URL (`https://api.example.com`).
    #[arg(long)]
    url: String,
    /// Write the results as JSON: `{"scenarios": [{name, passed, detected_ms, contained_ms,
    /// alerted_ms, failures}]}`.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Receive the alerts here (`127.0.0.1:9999`): the server's IMANGOR_ALERT_WEBHOOK_URL must
    /// point at it. Without it, alerts are not checked (`alerted_ms` null).
    #[arg(long)]
    webhook_listen: Option<SocketAddr>,
    /// The scrape endpoint (`http://127.0.0.1:9100/metrics`); without it the metric is not checked.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Replicas behind the URL: each counts invalid tokens on its own (`limits::blocks`), so the
    /// forged-token scenario sends enough for every replica to cross the threshold.
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    /// How long each step may take, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// One scenario's outcome (the JSON's `scenarios` items).
#[derive(Debug, Serialize)]
struct Outcome {
    name: &'static str,
    passed: bool,
    detected_ms: Option<u64>,
    contained_ms: Option<u64>,
    alerted_ms: Option<u64>,
    failures: Vec<String>,
    #[serde(skip)]
    incident: Option<String>,
    #[serde(skip)]
    kind: &'static str,
    #[serde(skip)]
    level: Level,
    #[serde(skip)]
    addr: IpAddr,
    /// The access token of the session the attack should get ended (refresh-token reuse).
    #[serde(skip)]
    session: Option<String>,
}

impl Outcome {
    fn new(name: &'static str, level: Level, addr: IpAddr) -> Outcome {
        Outcome {
            name,
            passed: false,
            detected_ms: None,
            contained_ms: None,
            alerted_ms: None,
            failures: Vec::new(),
            incident: None,
            kind: name,
            level,
            addr,
            session: None,
        }
    }
    fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }
}

/// An alert the receiver took: when, and its body.
type Received = Arc<Mutex<Vec<(Instant, Value)>>>;

/// The drill's view of the server: an HTTP client, the admin's token, the drill key.
struct Drill {
    http: reqwest::Client,
    base: String,
    key: Vec<u8>,
    admin: String,
    timeout: Duration,
    run: String,
    replicas: u32,
    /// The drill address the admin creates the drill accounts from: the registration budget
    /// of the operator's own address is left alone (and the trail shows them as the drill's).
    setup: IpAddr,
}

/// A drill account: its id, email and password.
struct Account {
    id: String,
    email: String,
    password: String,
}

pub(super) async fn run(args: DrillArgs, config: Config) -> anyhow::Result<()> {
    let key = config
        .drill_key
        .as_ref()
        .context("IMANGOR_DRILL_KEY (or IMANGOR_DRILL_KEY_FILE) is required: the server must have the same one")?
        .expose()
        .as_bytes()
        .to_vec();
    let email = std::env::var("IMANGOR_DRILL_ADMIN_EMAIL")
        .context("IMANGOR_DRILL_ADMIN_EMAIL is required")?;
    let password = secret_env("IMANGOR_DRILL_ADMIN_PASSWORD")?;
    let received: Received = Arc::default();
    if let Some(addr) = args.webhook_listen {
        receive_alerts(addr, received.clone(), &config).await?;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut d = Drill {
        http,
        base: args.url.trim_end_matches('/').to_owned(),
        key,
        admin: String::new(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        replicas: args.replicas.clamp(1, 100),
        setup: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let (mut status, mut body) = d.login(&email, &password, None).await?;
    if status == 400 && body["error"] == "mfa_required" {
        (status, body) = d.second_factor(&body).await?;
    }
    if status != 200 {
        bail!(
            "the admin could not sign in ({status}): check IMANGOR_DRILL_ADMIN_EMAIL and its password"
        );
    }
    d.admin = body["access_token"].as_str().unwrap_or_default().to_owned();
    let before = scrape(&d.http, args.metrics_url.as_deref()).await;

    // Nine drill addresses of the drill range, fresh for each run (a random base): one per
    // scenario, and one the drill accounts are created from.
    let base = 1 + (uuid::Uuid::new_v4().as_bytes()[0] % 240);
    let addr = |i: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, base + i));
    d.setup = addr(5);
    let mut accounts = Vec::new();
    let mut blocked = Vec::new();
    let mut outcomes = vec![
        Outcome::new("brute_force", Level::High, addr(0)),
        Outcome::new("credential_stuffing", Level::High, addr(1)),
        Outcome::new("refresh_reuse", Level::High, addr(2)),
        Outcome::new("authz_probing", Level::Medium, addr(3)),
        Outcome::new("forged_tokens", Level::High, addr(4)),
        Outcome::new("totp_guessing", Level::High, addr(6)),
    ];
    for o in &mut outcomes {
        let t0 = match d.attack(o, &mut accounts).await {
            Ok(t0) => t0,
            Err(e) => {
                o.fail(format!("the attack could not be run: {e:#}"));
                continue;
            }
        };
        let subject = match o.kind {
            "credential_stuffing" | "forged_tokens" => o.addr.to_string(),
            _ => accounts
                .last()
                .map(|a: &Account| a.id.clone())
                .unwrap_or_default(),
        };
        d.detect(o, &subject, t0).await;
        d.contain(o, t0, &mut blocked).await;
        if args.webhook_listen.is_some() && o.level >= config.alert_min_level {
            alerted(&d, o, &received, t0).await;
        }
    }
    d.audit(&mut outcomes).await;
    if let Some(before) = before {
        let after = scrape(&d.http, args.metrics_url.as_deref())
            .await
            .unwrap_or_default();
        for o in outcomes.iter_mut().filter(|o| o.incident.is_some()) {
            if count(&after, o.kind) <= count(&before, o.kind) {
                o.fail("security_incidents_total did not move");
            }
        }
    }
    d.clean_up(&mut outcomes, &accounts, &blocked).await;
    for o in &mut outcomes {
        o.passed = o.failures.is_empty();
    }
    print_table(&outcomes);
    if let Some(path) = &args.json {
        let doc = json!({ "run": d.run, "scenarios": outcomes });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    if failed > 0 {
        bail!("{failed} of {} drill scenarios failed", outcomes.len());
    }
    Ok(())
}

/// A secret from `NAME`, or from the file `NAME_FILE` names.
fn secret_env(name: &str) -> anyhow::Result<String> {
    if let Ok(v) = std::env::var(name) {
        return Ok(v);
    }
    let file = std::env::var(format!("{name}_FILE"))
        .with_context(|| format!("{name} or {name}_FILE is required"))?;
    let v = std::fs::read_to_string(&file).with_context(|| format!("reading {name}_FILE"))?;
    Ok(v.trim_end_matches(['\r', '\n']).to_owned())
}

impl Drill {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request, marked as drill traffic from `from` when given (the header signs the method
    /// and the path, without the query).
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        from: Option<IpAddr>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let mut r = self.http.request(method.clone(), self.url(path));
        if let Some(addr) = from {
            let bare = path.split('?').next().unwrap_or(path);
            let ts = Timestamp::now().unix_seconds();
            r = r.header(
                drill::HEADER,
                drill::sign(&self.key, ts, addr, method.as_str(), bare)?,
            );
        }
        Ok(r)
    }

    async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.json_as(&self.admin, None, method, path, body).await
    }

    /// A JSON call with `token`, marked as drill traffic from `from` when given; the status and
    /// the body (null when not JSON).
    async fn json_as(
        &self,
        token: &str,
        from: Option<IpAddr>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self.request(method, path, from)?.bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.with_context(|| format!("calling {path}"))?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        from: Option<IpAddr>,
    ) -> anyhow::Result<(u16, Value)> {
        let res = self
            .request(reqwest::Method::POST, path, from)?
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form)?)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn login(
        &self,
        email: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> anyhow::Result<(u16, Value)> {
        let form = [
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ];
        self.form("/api/v1/token", &form, from).await
    }

    /// The admin's second factor, for an admin with TOTP (containment and account changes need
    /// it): a code of IMANGOR_DRILL_ADMIN_TOTP_SECRET (base32, or its _FILE) for this step, or
    /// for the next one when this step's code was spent already.
    async fn second_factor(&self, challenge: &Value) -> anyhow::Result<(u16, Value)> {
        let secret = secret_env("IMANGOR_DRILL_ADMIN_TOTP_SECRET")
            .context("the admin has a second factor: give its TOTP secret")?;
        let secret = crate::auth::totp::from_base32(&secret)
            .context("IMANGOR_DRILL_ADMIN_TOTP_SECRET is not base32")?;
        let mfa_token = challenge["mfa_token"].as_str().unwrap_or_default();
        let step = crate::auth::totp::step_of(Timestamp::now().unix_seconds());
        let mut answer = (0, Value::Null);
        for step in [step, step + 1] {
            let otp = format!("{:06}", crate::auth::totp::code_at(&secret, step));
            let form = [
                ("grant_type", "urn:imangor:grant-type:mfa"),
                ("mfa_token", mfa_token),
                ("otp", otp.as_str()),
            ];
            answer = self.form("/api/v1/token", &form, None).await?;
            if answer.0 == 200 {
                break;
            }
        }
        Ok(answer)
    }

    /// Enrols a drill account in TOTP (as itself, from its drill address); the secret.
    async fn enrol_totp(&self, access: &str, a: &Account, from: IpAddr) -> anyhow::Result<Vec<u8>> {
        let post = reqwest::Method::POST;
        let ask = json!({"current_password": a.password});
        let path = "/api/v1/users/me/mfa/totp";
        let (status, body) = self
            .json_as(access, Some(from), post.clone(), path, Some(ask))
            .await?;
        let secret = body["secret"]
            .as_str()
            .and_then(crate::auth::totp::from_base32)
            // The body holds the secret: only the status goes into the failure.
            .with_context(|| format!("starting a TOTP enrolment answered {status}"))?;
        let step = crate::auth::totp::step_of(Timestamp::now().unix_seconds());
        let code = json!({"code": format!("{:06}", crate::auth::totp::code_at(&secret, step))});
        let path = "/api/v1/users/me/mfa/totp/confirm";
        let (status, _) = self
            .json_as(access, Some(from), post, path, Some(code))
            .await?;
        if status != 200 {
            bail!("confirming the TOTP enrolment answered {status}");
        }
        Ok(secret)
    }

    /// A drill account, signed in from `from` (kept in `accounts` for the clean-up); its tokens.
    async fn signed_in(
        &self,
        name: &str,
        from: Option<IpAddr>,
        accounts: &mut Vec<Account>,
    ) -> anyhow::Result<Value> {
        let a = self.account(name).await?;
        let (s, tokens) = self.login(&a.email, &a.password, from).await?;
        accounts.push(a);
        if s != 200 {
            bail!("the drill account could not sign in ({s})");
        }
        Ok(tokens)
    }

    /// A throw-away account, created by the admin.
    async fn account(&self, name: &str) -> anyhow::Result<Account> {
        let email = format!("drill-{}-{name}@{DRILL_EMAIL_DOMAIN}", self.run);
        let password = format!("drill {} {}", self.run, uuid::Uuid::new_v4().simple());
        let body =
            json!({"email": email, "password": password, "full_name": format!("drill {name}")});
        let (status, body) = self
            .json_as(
                &self.admin,
                Some(self.setup),
                reqwest::Method::POST,
                "/api/v1/users",
                Some(body),
            )
            .await?;
        if status != 201 {
            bail!("creating the drill account {email} answered {status}: {body}");
        }
        Ok(Account {
            id: body["id"].as_str().unwrap_or_default().to_owned(),
            email,
            password,
        })
    }

    /// Runs one scenario's attack; when its last request was answered.
    async fn attack(
        &self,
        o: &mut Outcome,
        accounts: &mut Vec<Account>,
    ) -> anyhow::Result<Instant> {
        let from = Some(o.addr);
        match o.kind {
            "brute_force" => {
                let a = self.account("brute").await?;
                for i in 0..crate::service::incidents::BRUTE_FORCE_FAILURES {
                    let (s, _) = self
                        .login(&a.email, &format!("wrong guess {i}"), from)
                        .await?;
                    if s != 400 && s != 429 {
                        bail!("a wrong password answered {s}");
                    }
                }
                accounts.push(a);
            }
            "credential_stuffing" => {
                for i in 0..crate::service::incidents::STUFFING_ACCOUNTS {
                    let email = format!("drill-{}-stuffed-{i}@{DRILL_EMAIL_DOMAIN}", self.run);
                    let (s, _) = self.login(&email, "a stuffed password", from).await?;
                    if s != 400 {
                        bail!("a wrong login answered {s}");
                    }
                }
            }
            "refresh_reuse" => {
                let first = self.signed_in("reuse", from, accounts).await?;
                let spent = first["refresh_token"].as_str().unwrap_or_default();
                let refresh = [("grant_type", "refresh_token"), ("refresh_token", spent)];
                let (s, rotated) = self.form("/api/v1/token", &refresh, from).await?;
                if s != 200 {
                    bail!("the first refresh answered {s}");
                }
                o.session = rotated["access_token"].as_str().map(str::to_owned);
                let (s, _) = self.form("/api/v1/token", &refresh, from).await?;
                if s != 400 {
                    bail!("the replayed refresh token answered {s}, not 400");
                }
            }
            "authz_probing" => {
                let t = self.signed_in("probe", from, accounts).await?;
                let token = t["access_token"].as_str().unwrap_or_default().to_owned();
                for _ in 0..crate::service::incidents::PROBING_DENIALS {
                    let s = self
                        .request(reqwest::Method::GET, "/api/v1/audit", from)?
                        .bearer_auth(&token)
                        .send()
                        .await?
                        .status()
                        .as_u16();
                    if s != 403 {
                        bail!("a plain user's read of the audit trail answered {s}, not 403");
                    }
                }
            }
            "totp_guessing" => {
                let t = self.signed_in("totp", from, accounts).await?;
                let access = t["access_token"].as_str().unwrap_or_default().to_owned();
                let secret = self
                    .enrol_totp(&access, &accounts[accounts.len() - 1], o.addr)
                    .await?;
                let a = &accounts[accounts.len() - 1];
                // Codes that are none of the three an authenticator could show now.
                let now = crate::auth::totp::step_of(Timestamp::now().unix_seconds());
                let valid: Vec<u32> = (now - 2..=now + 2)
                    .map(|step| crate::auth::totp::code_at(&secret, step))
                    .collect();
                let mut wrong = (0u32..)
                    .map(|i| (i * 111_111 + 7) % 1_000_000)
                    .filter(|c| !valid.contains(c));
                // The login guard locks an (account, address) pair after five failures
                // (IMANGOR_LOGIN_LOCK_AFTER), the password step of a second-factor sign-in
                // counting until a right code: four guesses a sign-in, from this scenario's
                // drill address and the two after it.
                let after = |n: u32| match o.addr {
                    IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) + n)),
                    v6 => v6,
                };
                let guesses = crate::service::incidents::TOTP_GUESSES;
                for (round, from) in [from, Some(after(1)), Some(after(2))]
                    .into_iter()
                    .enumerate()
                {
                    let left = guesses - 4 * round as i64;
                    if left <= 0 {
                        break;
                    }
                    let (s, challenge) = self.login(&a.email, &a.password, from).await?;
                    if s != 400 || challenge["error"] != "mfa_required" {
                        bail!("the enrolled account's sign-in answered {s}, not mfa_required");
                    }
                    let token = challenge["mfa_token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    for code in wrong.by_ref().take(left.min(4) as usize) {
                        let otp = format!("{code:06}");
                        let form = [
                            ("grant_type", "urn:imangor:grant-type:mfa"),
                            ("mfa_token", token.as_str()),
                            ("otp", otp.as_str()),
                        ];
                        let (s, _) = self.form("/api/v1/token", &form, from).await?;
                        if s != 400 {
                            bail!("a wrong second-factor code answered {s}");
                        }
                    }
                }
            }
            _ => {
                let forged =
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkcmlsbCJ9.c2lnbmF0dXJlLW9mLWEtZHJpbGw";
                // Each replica counts on its own; a balancer spreads the requests about evenly,
                // so a tenth more per extra replica covers an uneven share.
                let per = crate::limits::blocks::FORGED_TOKENS;
                let n = per * self.replicas + (per / 10) * (self.replicas - 1);
                for _ in 0..n {
                    let s = self
                        .request(reqwest::Method::GET, "/api/v1/users/me", from)?
                        .bearer_auth(forged)
                        .send()
                        .await?
                        .status()
                        .as_u16();
                    if s != 401 && s != 429 {
                        bail!("a forged token answered {s}");
                    }
                }
            }
        }
        Ok(Instant::now())
    }

    /// Waits for the scenario's incident: its kind and subject, labelled drill, at its level.
    async fn detect(&self, o: &mut Outcome, subject: &str, t0: Instant) {
        let path = "/api/v1/incidents?limit=100";
        while t0.elapsed() < self.timeout {
            if let Ok((200, page)) = self.admin_json(reqwest::Method::GET, path, None).await
                && let Some(i) = page["items"].as_array().and_then(|items| {
                    items.iter().find(|i| {
                        i["kind"] == o.kind && i["subject"] == subject && i["status"] != "resolved"
                    })
                })
            {
                o.detected_ms = Some(ms(t0));
                o.incident = i["id"].as_str().map(str::to_owned);
                if i["drill"] != true {
                    o.fail("the incident is not labelled drill");
                }
                if i["level"] != o.level.as_str() {
                    o.fail(format!("the incident is {}, not {}", i["level"], o.level));
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        o.fail(format!("no {} incident within {:?}", o.kind, self.timeout));
    }

    /// Where the detector contains: the address refused (credential stuffing: `403
    /// address_blocked`), the session ended (refresh-token reuse: its rotated access token
    /// refused). The others contain nothing by themselves (`contained_ms` null).
    async fn contain(&self, o: &mut Outcome, t0: Instant, blocked: &mut Vec<String>) {
        let token = match o.kind {
            "credential_stuffing" => None,
            "refresh_reuse" => o.session.clone(),
            _ => return,
        };
        while t0.elapsed() < self.timeout {
            let mut req = match self.request(reqwest::Method::GET, "/api/v1/users/me", Some(o.addr))
            {
                Ok(r) => r,
                Err(e) => {
                    o.fail(format!("signing a drill request: {e}"));
                    return;
                }
            };
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let contained = match req.send().await {
                Ok(r) if token.is_none() && r.status() == 403 => {
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    body["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("address_blocked"))
                }
                Ok(r) => token.is_some() && r.status() == 401,
                Err(_) => false,
            };
            if contained {
                o.contained_ms = Some(ms(t0));
                if token.is_none() {
                    blocked.push(format!("{}/32", o.addr));
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        o.fail(format!("not contained within {:?}", self.timeout));
    }

    /// The audit trail holds each scenario's events (from its drill address) and the opening of
    /// its incident, and the chain check found no problem.
    async fn audit(&self, outcomes: &mut [Outcome]) {
        let mut wanted: Vec<(usize, bool, bool)> =
            (0..outcomes.len()).map(|i| (i, false, false)).collect();
        let mut chain_problem = None;
        let deadline = Instant::now() + self.timeout;
        // Newest first, page after page; read again from the top while something is missing: an
        // event appears once sealed (within a second), the last incident's opening included.
        'read: while Instant::now() < deadline {
            let mut cursor: Option<String> = None;
            for _ in 0..100 {
                let path = match &cursor {
                    Some(c) => format!("/api/v1/audit?limit=100&cursor={c}"),
                    None => "/api/v1/audit?limit=100".to_owned(),
                };
                let Ok((200, page)) = self.admin_json(reqwest::Method::GET, &path, None).await
                else {
                    break 'read;
                };
                if cursor.is_none() && !page["chain"]["first_problem"].is_null() {
                    chain_problem = Some(page["chain"]["first_problem"].to_string());
                }
                for e in page["items"].as_array().into_iter().flatten() {
                    for (i, from, opened) in wanted.iter_mut() {
                        let o = &outcomes[*i];
                        *from |= e["ip"] == o.addr.to_string();
                        *opened |= o.incident.as_ref().is_some_and(|id| {
                            e["action"] == "incident.open"
                                && e["target"] == format!("incident:{id}")
                        });
                    }
                }
                let done = wanted
                    .iter()
                    .all(|(i, from, opened)| *from && (*opened || outcomes[*i].incident.is_none()));
                if done {
                    break 'read;
                }
                cursor = page["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() || Instant::now() > deadline {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for (i, from, opened) in wanted {
            let o = &mut outcomes[i];
            if !from {
                o.fail("the audit trail holds no event from its drill address");
            }
            if o.incident.is_some() && !opened {
                o.fail("the audit trail holds no incident.open for its incident");
            }
            if let Some(p) = &chain_problem {
                o.fail(format!("the audit chain check found a problem: {p}"));
            }
        }
    }

    /// Resolves the drill's incidents, lifts the blocks it saw its traffic set off, disables its
    /// accounts; a step that fails fails its scenario (or every scenario, for an account).
    async fn clean_up(&self, outcomes: &mut [Outcome], accounts: &[Account], blocked: &[String]) {
        let note = format!("drill {}: resolved by imangor drill", self.run);
        for o in outcomes.iter_mut() {
            let Some(id) = o.incident.clone() else {
                continue;
            };
            let body = json!({"status": "resolved", "note": note});
            match self
                .admin_json(
                    reqwest::Method::PATCH,
                    &format!("/api/v1/incidents/{id}"),
                    Some(body),
                )
                .await
            {
                Ok((200, _)) => {}
                Ok((s, b)) => o.fail(format!("resolving its incident answered {s}: {b}")),
                Err(e) => o.fail(format!("resolving its incident: {e:#}")),
            }
        }
        for cidr in blocked {
            let body = json!({"action": "unblock_address", "cidr": cidr, "reason": note});
            match self
                .admin_json(reqwest::Method::POST, "/api/v1/containment", Some(body))
                .await
            {
                Ok((200, _)) => {}
                Ok((s, b)) => {
                    outcomes[1].fail(format!("lifting the block of {cidr} answered {s}: {b}"))
                }
                Err(e) => outcomes[1].fail(format!("lifting the block of {cidr}: {e:#}")),
            }
        }
        for a in accounts {
            let body = json!({"disabled": true});
            match self
                .admin_json(
                    reqwest::Method::PATCH,
                    &format!("/api/v1/users/{}", a.id),
                    Some(body),
                )
                .await
            {
                Ok((200, _)) => {}
                other => {
                    let why = match other {
                        Ok((s, b)) => format!("disabling {} answered {s}: {b}", a.email),
                        Err(e) => format!("disabling {}: {e:#}", a.email),
                    };
                    for o in outcomes.iter_mut() {
                        o.fail(why.clone());
                    }
                }
            }
        }
    }
}

/// Waits for the alert of the scenario's incident at the receiver.
async fn alerted(d: &Drill, o: &mut Outcome, received: &Received, t0: Instant) {
    let Some(id) = o.incident.clone() else { return };
    while t0.elapsed() < d.timeout {
        let at = received.lock().ok().and_then(|r| {
            r.iter()
                .find(|(_, b)| b["incident"]["id"] == id.as_str())
                .map(|(at, _)| *at)
        });
        if let Some(at) = at {
            o.alerted_ms = Some(at.saturating_duration_since(t0).as_millis() as u64);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    o.fail(format!("no alert within {:?}", d.timeout));
}

/// Starts the alert receiver: every POST whose signature checks (when the drill knows the
/// webhook secret, IMANGOR_ALERT_WEBHOOK_SECRET) is kept with the time it came.
async fn receive_alerts(addr: SocketAddr, into: Received, config: &Config) -> anyhow::Result<()> {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let secret = config
        .alert_webhook_secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec());
    let handler = move |headers: HeaderMap, body: Bytes| {
        let into = into.clone();
        let secret = secret.clone();
        async move {
            if let Some(secret) = &secret {
                let given = headers
                    .get("x-imangor-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let ts = given
                    .strip_prefix("t=")
                    .and_then(|r| r.split(',').next())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let expected = crate::infra::alerts::signature(secret, ts, &body);
                if aws_lc_rs::constant_time::verify_slices_are_equal(
                    expected.as_bytes(),
                    given.as_bytes(),
                )
                .is_err()
                {
                    return StatusCode::UNAUTHORIZED;
                }
            }
            if let (Ok(v), Ok(mut all)) = (serde_json::from_slice::<Value>(&body), into.lock()) {
                all.push((Instant::now(), v));
            }
            StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().fallback(axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for alerts on {addr}"))?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

/// The scrape endpoint's text, when one is given and it answers.
async fn scrape(http: &reqwest::Client, url: Option<&str>) -> Option<String> {
    let res = http.get(url?).send().await.ok()?;
    res.text().await.ok()
}

/// The sum of `security_incidents_total` over the levels of `kind`.
fn count(text: &str, kind: &str) -> f64 {
    let label = format!("type=\"{kind}\"");
    text.lines()
        .filter(|l| l.starts_with("security_incidents_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

fn print_table(outcomes: &[Outcome]) {
    let shown = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
    println!(
        "{:<22} {:>12} {:>12} {:>12}  result",
        "scenario", "detected in", "contained in", "alerted in"
    );
    for o in outcomes {
        println!(
            "{:<22} {:>12} {:>12} {:>12}  {}",
            o.name,
            shown(o.detected_ms),
            shown(o.contained_ms),
            shown(o.alerted_ms),
            if o.passed { "pass" } else { "FAIL" }
        );
        for f in &o.failures {
            println!("    - {f}");
        }
    }
}
