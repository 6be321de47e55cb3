//! The shopaholic: a load that behaves like a shop's most tireless customer (docs/shop.md).
//!
//! Each virtual client is one user: it browses a category, looks at a few products, then adds
//! and removes cart lines again and again (the agony of choice), looks at its cart, orders now
//! and then, and cancels or pays some of its orders. Every request is timed into a histogram
//! of its kind, so a report can compare each kind of request across configurations.
//!
//! Requests go round-robin over several entry points (the nginx instances); one that refuses
//! a connection is skipped for a second while the others carry on, so the load survives an
//! entry point dying.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The kinds of request, in the order reports list them.
pub const KINDS: [&str; 9] = [
    "browse",
    "product",
    "cart_set",
    "cart_remove",
    "cart_view",
    "order",
    "pay",
    "cancel",
    "orders",
];

#[derive(clap::Args)]
pub struct ShopaholicArgs {
    /// Entry points, comma-separated (the nginx instances), e.g. http://127.0.0.1:61491.
    #[arg(long, value_delimiter = ',', required = true)]
    pub targets: Vec<String>,
    /// Shoppers' bearer tokens, one per line (`agora scenario shop`); client k is shopper k.
    #[arg(long)]
    pub users: PathBuf,
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Products to put on sale first (by the first shopper), when the catalog has fewer.
    #[arg(long, default_value_t = 500)]
    pub products: usize,
    /// The configuration this run measures (a report's column).
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Where to write this run's results (JSON).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the id of every order the shop acknowledged (200), one per line, for a checker
    /// that then looks for each of them in the database.
    #[arg(long)]
    pub orders_log: Option<PathBuf>,
}

/// One kind of request over the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindSummary {
    pub count: u64,
    /// Answers the shop gives by design under contention (409: not enough stock, an order
    /// that cannot move), not counted as errors.
    pub conflicts: u64,
    pub errors: u64,
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShopaholicReport {
    pub label: String,
    pub clients: usize,
    pub duration_secs: f64,
    pub targets: Vec<String>,
    pub kinds: BTreeMap<String, KindSummary>,
    /// Status codes of errors (and "transport" for no answer), over the measured window.
    pub error_statuses: BTreeMap<String, u64>,
    /// Requests sent to another entry point because one refused the connection.
    pub failovers: u64,
}

#[derive(Default)]
struct Tally {
    histograms: BTreeMap<&'static str, Histogram<u64>>,
    conflicts: BTreeMap<&'static str, u64>,
    errors: BTreeMap<&'static str, u64>,
    statuses: BTreeMap<String, u64>,
}

struct Shared {
    targets: Vec<String>,
    next: AtomicUsize,
    /// When each target may be tried again after refusing a connection.
    resting: Mutex<Vec<Option<Instant>>>,
    failovers: AtomicUsize,
    client: reqwest::Client,
    measuring: std::sync::atomic::AtomicBool,
    tally: Mutex<Tally>,
    /// Every acknowledged order, warm-up included.
    acknowledged: Mutex<Vec<String>>,
}

enum Outcome {
    Ok(serde_json::Value),
    Conflict,
    Failed,
}

impl Shared {
    fn target(&self) -> usize {
        let count = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let resting = self.resting.lock().expect("not poisoned");
        let now = Instant::now();
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|at| resting[*at].is_none_or(|until| until <= now))
            .unwrap_or(start % count)
    }

    async fn call(
        &self,
        kind: &'static str,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
        key: Option<String>,
    ) -> Outcome {
        let started = Instant::now();
        let mut tries = 0;
        let response = loop {
            let at = self.target();
            let mut request = self
                .client
                .request(method.clone(), format!("{}{path}", self.targets[at]))
                .bearer_auth(token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Some(key) = &key {
                request = request.header("Idempotency-Key", key);
            }
            match request.send().await {
                Ok(response) => break Some(response),
                Err(error) if error.is_connect() && tries + 1 < self.targets.len() => {
                    // Nothing was sent: another entry point may take it.
                    tries += 1;
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                    self.resting.lock().expect("not poisoned")[at] =
                        Some(Instant::now() + Duration::from_secs(1));
                }
                Err(_) => break None,
            }
        };
        let (outcome, status) = match response {
            Some(response) => {
                let status = response.status();
                if status.is_success() {
                    let body = response.json().await.unwrap_or(serde_json::Value::Null);
                    (Outcome::Ok(body), None)
                } else if status == reqwest::StatusCode::CONFLICT {
                    (Outcome::Conflict, None)
                } else {
                    (Outcome::Failed, Some(status.as_u16().to_string()))
                }
            }
            None => (Outcome::Failed, Some("transport".to_owned())),
        };
        if self.measuring.load(Ordering::Relaxed) {
            let micros = (started.elapsed().as_micros() as u64).max(1);
            let mut tally = self.tally.lock().expect("not poisoned");
            tally
                .histograms
                .entry(kind)
                .or_insert_with(|| {
                    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds")
                })
                .saturating_record(micros);
            match (&outcome, status) {
                (Outcome::Conflict, _) => *tally.conflicts.entry(kind).or_default() += 1,
                (Outcome::Failed, Some(status)) => {
                    *tally.errors.entry(kind).or_default() += 1;
                    *tally.statuses.entry(status).or_default() += 1;
                }
                _ => {}
            }
        }
        outcome
    }
}

/// A small deterministic generator per client (no shared RNG, no lock).
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const CATEGORIES: [&str; 8] = [
    "tea", "coffee", "books", "games", "garden", "kitchen", "music", "sport",
];

/// Products on sale: ids, enough for the shoppers to choose from.
async fn catalog(shared: &Shared, seller: &str, wanted: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for category in CATEGORIES {
        let path = format!("/shop/products?category={category}&limit=100");
        if let Outcome::Ok(page) = shared
            .call("browse", reqwest::Method::GET, &path, seller, None, None)
            .await
        {
            for item in page["items"].as_array().into_iter().flatten() {
                ids.extend(item["id"].as_str().map(str::to_owned));
            }
        }
    }
    let mut n = ids.len();
    while ids.len() < wanted {
        let body = serde_json::json!({
            "name": format!("Item {n}"),
            "description": "for the shopaholic",
            "category": CATEGORIES[n % CATEGORIES.len()],
            "price_minor": 1000 + (n as i64 * 37) % 100_000,
            "stock": 1_000_000,
        });
        match shared
            .call(
                "product",
                reqwest::Method::POST,
                "/shop/products",
                seller,
                Some(body),
                None,
            )
            .await
        {
            Outcome::Ok(product) => {
                ids.extend(product["id"].as_str().map(str::to_owned));
            }
            _ => bail!(
                "could not put a product on sale (is the shop up behind {:?}?)",
                shared.targets
            ),
        }
        n += 1;
    }
    Ok(ids)
}

/// One shopper's visits, until `deadline`.
async fn shopper(
    shared: Arc<Shared>,
    token: String,
    products: Arc<Vec<String>>,
    mut dice: Dice,
    client: usize,
    run: u64,
    deadline: Instant,
) {
    use reqwest::Method;
    let mut orders: Vec<String> = Vec::new();
    let mut in_cart: Vec<String> = Vec::new();
    let mut visit = 0u64;
    while Instant::now() < deadline {
        visit += 1;
        let category = CATEGORIES[dice.below(CATEGORIES.len())];
        shared
            .call(
                "browse",
                Method::GET,
                &format!("/shop/products?category={category}&limit=20"),
                &token,
                None,
                None,
            )
            .await;
        for _ in 0..1 + dice.below(3) {
            let product = &products[dice.below(products.len())];
            shared
                .call(
                    "product",
                    Method::GET,
                    &format!("/shop/products/{product}"),
                    &token,
                    None,
                    None,
                )
                .await;
        }
        // The agony of choice.
        for _ in 0..3 + dice.below(6) {
            if !in_cart.is_empty() && dice.chance(40) {
                let product = in_cart.swap_remove(dice.below(in_cart.len()));
                shared
                    .call(
                        "cart_remove",
                        Method::DELETE,
                        &format!("/shop/cart/items/{product}"),
                        &token,
                        None,
                        None,
                    )
                    .await;
            } else {
                let product = products[dice.below(products.len())].clone();
                let quantity = 1 + dice.below(3);
                shared
                    .call(
                        "cart_set",
                        Method::PUT,
                        &format!("/shop/cart/items/{product}"),
                        &token,
                        Some(serde_json::json!({ "quantity": quantity })),
                        None,
                    )
                    .await;
                if !in_cart.contains(&product) {
                    in_cart.push(product);
                }
            }
        }
        shared
            .call("cart_view", Method::GET, "/shop/cart", &token, None, None)
            .await;
        if !in_cart.is_empty() && dice.chance(25) {
            let key = format!("shopaholic-{run}-{client}-{visit}");
            if let Outcome::Ok(order) = shared
                .call(
                    "order",
                    Method::POST,
                    "/shop/orders",
                    &token,
                    None,
                    Some(key),
                )
                .await
            {
                in_cart.clear();
                if let Some(id) = order["id"].as_str() {
                    orders.push(id.to_owned());
                    shared
                        .acknowledged
                        .lock()
                        .expect("not poisoned")
                        .push(id.to_owned());
                }
            }
        }
        if let Some(order) = orders.pop() {
            let action = if dice.chance(40) { "cancel" } else { "pay" };
            shared
                .call(
                    if action == "cancel" { "cancel" } else { "pay" },
                    Method::POST,
                    &format!("/shop/orders/{order}/{action}"),
                    &token,
                    None,
                    Some(format!("shopaholic-{run}-{client}-{visit}-{action}")),
                )
                .await;
        }
        if dice.chance(10) {
            shared
                .call(
                    "orders",
                    Method::GET,
                    "/shop/orders?limit=10",
                    &token,
                    None,
                    None,
                )
                .await;
        }
    }
}

pub async fn shopaholic(args: ShopaholicArgs) -> anyhow::Result<ShopaholicReport> {
    let tokens: Vec<String> = std::fs::read_to_string(&args.users)
        .with_context(|| format!("reading {}", args.users.display()))?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.len() < args.clients {
        bail!(
            "{} has {} shoppers; {} clients need one each",
            args.users.display(),
            tokens.len(),
            args.clients
        );
    }
    for target in &args.targets {
        if !(target.starts_with("http://127.0.0.1:") || target.starts_with("http://localhost:")) {
            bail!("{target}: the load tool measures this machine only (loopback targets)");
        }
    }
    let shared = Arc::new(Shared {
        targets: args.targets.clone(),
        next: AtomicUsize::new(0),
        resting: Mutex::new(vec![None; args.targets.len()]),
        failovers: AtomicUsize::new(0),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(args.clients)
            .build()?,
        measuring: std::sync::atomic::AtomicBool::new(false),
        tally: Mutex::default(),
        acknowledged: Mutex::default(),
    });
    let products = Arc::new(catalog(&shared, &tokens[0], args.products).await?);
    // Idempotency keys must not repeat across runs against one database: a repeated key with
    // another request is refused (422), with the same one replayed.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.warmup_secs + args.duration_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for (client, token) in tokens.into_iter().take(args.clients).enumerate() {
        tasks.spawn(shopper(
            shared.clone(),
            token,
            products.clone(),
            Dice(
                args.seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(client as u64),
            ),
            client,
            run,
            deadline,
        ));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    shared.failovers.store(0, Ordering::Relaxed);
    shared.measuring.store(true, Ordering::Relaxed);
    let measured_from = Instant::now();
    while tasks.join_next().await.is_some() {}
    shared.measuring.store(false, Ordering::Relaxed);
    let elapsed = measured_from.elapsed().as_secs_f64();
    let tally = std::mem::take(&mut *shared.tally.lock().expect("not poisoned"));
    let ms = |us: u64| us as f64 / 1000.0;
    let kinds = tally
        .histograms
        .iter()
        .map(|(kind, histogram)| {
            let errors = tally.errors.get(kind).copied().unwrap_or(0);
            let conflicts = tally.conflicts.get(kind).copied().unwrap_or(0);
            (
                (*kind).to_owned(),
                KindSummary {
                    count: histogram.len(),
                    conflicts,
                    errors,
                    rps: (histogram.len() - errors) as f64 / elapsed,
                    mean_ms: histogram.mean() / 1000.0,
                    p50_ms: ms(histogram.value_at_quantile(0.5)),
                    p99_ms: ms(histogram.value_at_quantile(0.99)),
                    max_ms: ms(histogram.max()),
                },
            )
        })
        .collect();
    let report = ShopaholicReport {
        label: args.label,
        clients: args.clients,
        duration_secs: elapsed,
        targets: args.targets,
        kinds,
        error_statuses: tally.statuses,
        failovers: shared.failovers.load(Ordering::Relaxed) as u64,
    };
    if let Some(path) = &args.orders_log {
        let mut ids = shared.acknowledged.lock().expect("not poisoned").join("\n");
        ids.push('\n');
        std::fs::write(path, ids).with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(report)
}

/// Markdown: one table per measure, a row per kind of request, a column per configuration.
pub fn shop_markdown(reports: &[ShopaholicReport], charts: &[(&str, String)]) -> String {
    let mut out = String::new();
    let header = |out: &mut String| {
        out.push_str("| request |");
        for report in reports {
            out.push_str(&format!(" {} |", report.label));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(reports.len()));
        out.push('\n');
    };
    type Measure = fn(&KindSummary) -> String;
    let measures: [(&str, Measure); 5] = [
        ("Mean time, ms", |k| format!("{:.2}", k.mean_ms)),
        ("p50, ms", |k| format!("{:.2}", k.p50_ms)),
        ("p99, ms", |k| format!("{:.1}", k.p99_ms)),
        ("Requests per second", |k| format!("{:.0}", k.rps)),
        ("Errors (non-2xx other than 409) / 409 conflicts", |k| {
            format!("{} / {}", k.errors, k.conflicts)
        }),
    ];
    for (title, measure) in measures {
        out.push_str(&format!("### {title}\n\n"));
        header(&mut out);
        for kind in KINDS {
            out.push_str(&format!("| {kind} |"));
            for report in reports {
                let cell = report.kinds.get(kind).map(measure).unwrap_or("-".into());
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    for (title, png) in charts {
        out.push_str(&format!("![{title}]({png})\n\n"));
    }
    out
}

/// Grouped bars: for each kind of request, one bar per configuration.
pub fn shop_chart(
    reports: &[ShopaholicReport],
    title: &str,
    value: fn(&KindSummary) -> f64,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let kinds: Vec<String> = KINDS
        .iter()
        .filter(|kind| {
            reports
                .iter()
                .any(|report| report.kinds.contains_key(**kind))
        })
        .map(|kind| (*kind).to_owned())
        .collect();
    let series: Vec<(String, Vec<Option<f64>>)> = reports
        .iter()
        .map(|report| {
            let values = kinds
                .iter()
                .map(|kind| report.kinds.get(kind).map(value))
                .collect();
            (report.label.clone(), values)
        })
        .collect();
    crate::report::grouped_bars(path, title, "ms", &kinds, &series, false)
}
