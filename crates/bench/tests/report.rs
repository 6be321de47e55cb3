//! Renders synthetic run reports and checks the files: JSON, SVG charts and Markdown.
//!
//! Set `AGORA_REPORT_KEEP=1` to keep the output directories (their paths are printed) so the
//! charts can be looked at.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use agora_bench::model::{
    LatencySummary, MachineInfo, Point, RunParams, RunReport, Second, Series,
};
use agora_bench::report::{render_markdown, write_all};

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("agora-report-{tag}-{}-{nanos}", std::process::id()))
}

fn cleanup(dir: &Path) {
    if std::env::var_os("AGORA_REPORT_KEEP").is_some() {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Latency at percentile `p` for a synthetic target: `base_us` at the median, growing with the
/// "number of nines".
fn latency_at(base_us: f64, tail: f64, p: f64) -> u64 {
    let nines = 1.0 / (1.0 - (p / 100.0).min(0.999_999));
    (base_us * (nines / 2.0).powf(tail)).round() as u64
}

/// A point at `concurrency` with `rps` successes per second, median `base_us` and `errors`.
fn point(concurrency: u32, rps: f64, base_us: f64, errors: u64, outcomes: &[(&str, u64)]) -> Point {
    let duration = 10.0;
    let ok = (rps * duration) as u64;
    let tail = 0.35;
    let mut distribution = Vec::new();
    let mut latency = LatencySummary::default();
    if ok > 0 {
        // HdrHistogram-like quantile iteration: 5 steps per halving of the remaining tail.
        let mut k = 0;
        loop {
            let p = 100.0 * (1.0 - 0.5f64.powf(k as f64 / 5.0));
            if 1.0 - p / 100.0 < 1.0 / ok as f64 {
                break;
            }
            distribution.push((p, latency_at(base_us, tail, p)));
            k += 1;
        }
        distribution.push((100.0, latency_at(base_us, tail, 99.9999)));
        latency = LatencySummary {
            mean_us: base_us * 1.2,
            p50_us: latency_at(base_us, tail, 50.0),
            p90_us: latency_at(base_us, tail, 90.0),
            p99_us: latency_at(base_us, tail, 99.0),
            p999_us: latency_at(base_us, tail, 99.9),
            max_us: latency_at(base_us, tail, 99.9999),
        };
    }
    let timeline = (0..10u32)
        .map(|t| {
            // A dip in the middle, as a GC pause or a checkpoint would cause.
            let factor = if t == 5 {
                0.6
            } else {
                1.0 + 0.03 * f64::from(t % 3)
            };
            let ok_t = (rps * factor) as u64;
            Second {
                t,
                ok: ok_t,
                errors: errors / 10,
                p50_us: if ok_t > 0 { latency.p50_us } else { 0 },
                p99_us: if ok_t > 0 {
                    (latency.p99_us as f64 / factor) as u64
                } else {
                    0
                },
                in_flight: u64::from(concurrency),
            }
        })
        .collect();
    let mut outcome_map = BTreeMap::new();
    if ok > 0 {
        outcome_map.insert("200".to_owned(), ok);
    }
    for (k, n) in outcomes {
        outcome_map.insert((*k).to_owned(), *n);
    }
    Point {
        concurrency,
        target_rate: None,
        duration_secs: duration,
        ok,
        errors,
        outcomes: outcome_map,
        throughput_rps: ok as f64 / duration,
        latency,
        timeline,
        distribution,
    }
}

fn report(series: Vec<Series>) -> RunReport {
    RunReport {
        title: "User search: before and after the name-prefix index".to_owned(),
        started_at: "2025-06-01T12:00:03Z".to_owned(),
        machine: MachineInfo {
            cpus: 2,
            memory_gib: 7.75,
            os: "Linux 6.8 (Debian 13)".to_owned(),
            cpu_model: "AMD EPYC 7B13".to_owned(),
        },
        params: RunParams {
            model: "closed".to_owned(),
            warmup_secs: 2.0,
            duration_secs: 10.0,
            timeout_ms: 2000,
        },
        notes: vec![
            "1,000,000 users, names drawn from the seed lists".to_owned(),
            "prefixes: 1 to 3 letters, uniform".to_owned(),
        ],
        series,
        preamble: String::new(),
        appendix: Vec::new(),
    }
}

fn three_series() -> RunReport {
    report(vec![
        Series {
            name: "/health ceiling".to_owned(),
            description: "GET /health".to_owned(),
            points: vec![
                point(1, 9_800.0, 95.0, 0, &[]),
                point(10, 41_000.0, 230.0, 0, &[]),
                point(100, 52_000.0, 1_850.0, 0, &[]),
                point(1000, 50_500.0, 19_000.0, 0, &[]),
            ],
        },
        Series {
            name: "search without index".to_owned(),
            description: "GET /user/search?first_name=..&last_name=.. (1-3 letter prefixes)"
                .to_owned(),
            points: vec![
                point(1, 21.0, 46_000.0, 0, &[]),
                point(10, 43.0, 220_000.0, 0, &[]),
                point(100, 41.5, 1_900_000.0, 25, &[("503", 18), ("timeout", 7)]),
                point(1000, 0.0, 0.0, 1500, &[("timeout", 1200), ("503", 300)]),
            ],
        },
        Series {
            name: "search with index".to_owned(),
            description: "same requests, with the name-prefix index".to_owned(),
            points: vec![
                point(1, 1_450.0, 640.0, 0, &[]),
                point(10, 5_900.0, 1_500.0, 0, &[]),
                point(100, 6_400.0, 14_000.0, 0, &[]),
                point(1000, 6_100.0, 150_000.0, 3, &[("connect", 3)]),
            ],
        },
    ])
}

const CHARTS: [&str; 5] = [
    "throughput",
    "latency",
    "latency-vs-throughput",
    "timeline",
    "distribution",
];

fn assert_files(dir: &Path, stem: &str, written: &[PathBuf]) {
    let mut expected = vec![dir.join(format!("{stem}.json"))];
    expected.extend(CHARTS.iter().map(|c| dir.join(format!("{stem}-{c}.svg"))));
    expected.push(dir.join(format!("{stem}.md")));
    assert_eq!(written, expected.as_slice());
    for path in written {
        let len = fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(len > 0, "{} is empty", path.display());
    }
    for c in CHARTS {
        let svg = fs::read_to_string(dir.join(format!("{stem}-{c}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg"),
            "{c}: {}",
            &svg[..svg.len().min(80)]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{c}");
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "{c} has NaN/inf coordinates"
        );
    }
}

#[test]
fn writes_json_charts_and_markdown() {
    let dir = temp_dir("full");
    let stem = "user-search";
    let r = three_series();
    let written = write_all(&r, &dir, stem).unwrap();
    assert_files(&dir, stem, &written);

    // The JSON round-trips.
    let json = fs::read_to_string(dir.join("user-search.json")).unwrap();
    let back: RunReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.series.len(), 3);
    assert_eq!(back.series[1].points[3].errors, 1500);

    // Every chart names every series in its legend, except where a series has no data to
    // show: the one whose top level failed completely still appears (at a lower level).
    for c in CHARTS {
        let svg = fs::read_to_string(dir.join(format!("user-search-{c}.svg"))).unwrap();
        for s in &r.series {
            assert!(svg.contains(&s.name), "{c} lacks {}", s.name);
        }
    }
    let throughput = fs::read_to_string(dir.join("user-search-throughput.svg")).unwrap();
    for label in [
        ">\n1\n</text>",
        ">\n10\n</text>",
        ">\n100\n</text>",
        ">\n1000\n</text>",
    ] {
        assert!(
            throughput.contains(label),
            "throughput x axis lacks {label:?}"
        );
    }
    let distribution = fs::read_to_string(dir.join("user-search-distribution.svg")).unwrap();
    for label in ["50%", "90%", "99%", "99.9%"] {
        assert!(distribution.contains(label), "distribution lacks {label}");
    }
    assert!(
        distribution.contains("(c=100)"),
        "falls back below the failed level"
    );

    let md = fs::read_to_string(dir.join("user-search.md")).unwrap();
    println!("{md}");
    assert!(md.starts_with("# User search: before and after the name-prefix index\n"));
    assert!(md.contains("2025-06-01 12:00:03 UTC"));
    assert!(md.contains("## Setup"));
    assert!(md.contains("2 CPUs (AMD EPYC 7B13), 7.8 GiB RAM, Linux 6.8 (Debian 13)"));
    assert!(md.contains("- prefixes: 1 to 3 letters, uniform"));
    assert!(md.contains("2 s warm-up, then 10 s measured; request timeout 2000 ms"));
    assert!(md.contains("## Results"));
    assert!(md.contains("### search without index"));
    assert!(
        md.contains(
            "| concurrency | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |"
        )
    );
    // Thousands separators, µs-exact sub-millisecond latencies.
    assert!(md.contains("| 100 | 52,000 | 1.85 |"), "{md}");
    assert!(md.contains("| 1 | 9,800 | 0.095 |"), "{md}");
    // Errors with their outcomes, most frequent first; the zero-ok point has no latencies.
    assert!(md.contains("| 25 (503×18, timeout×7) |"));
    assert!(md.contains("| 1000 | 0 | — | — | — | — | — | 1500 (timeout×1200, 503×300) |"));
    assert!(md.contains("| 3 (connect×3) |"));
    // Side-by-side table with ratio columns against the first series.
    assert!(md.contains("### rps at each concurrency"));
    assert!(md.contains(
        "| concurrency | /health ceiling | search without index | search with index | \
         search without index (% of /health ceiling) | search with index (% of /health ceiling) |"
    ));
    assert!(
        md.contains("| 10 | 41,000 | 43.0 | 5,900 | 0.105% | 14.4% |"),
        "{md}"
    );
    for c in CHARTS {
        assert!(
            md.contains(&format!("](user-search-{c}.png)")),
            "no image for {c}"
        );
        assert!(
            md.contains(&format!("](user-search-{c}.svg)")),
            "no SVG link for {c}"
        );
    }
    assert!(md.contains("![Throughput vs concurrency](user-search-throughput.png)"));
    cleanup(&dir);
}

#[test]
fn survives_edge_cases() {
    // A single level, zero latencies everywhere, an empty series, a zero-ok point.
    let mut single = point(64, 120.0, 0.0, 0, &[]);
    single.latency = LatencySummary::default();
    single.distribution = vec![(0.0, 0), (50.0, 0), (100.0, 0)];
    let r = report(vec![
        Series {
            name: "single".to_owned(),
            description: String::new(),
            points: vec![single],
        },
        Series {
            name: "nothing measured".to_owned(),
            description: String::new(),
            points: vec![],
        },
        Series {
            name: "all failed".to_owned(),
            description: String::new(),
            points: vec![point(64, 0.0, 0.0, 10, &[("timeout", 10)])],
        },
    ]);
    let dir = temp_dir("edge");
    let written = write_all(&r, &dir, "edge").unwrap();
    assert_files(&dir, "edge", &written);
    let md = fs::read_to_string(dir.join("edge.md")).unwrap();
    assert!(md.contains("_No measurements._"));
    assert!(
        md.contains("| 64 | 0 | — | — | — | — | — | 10 (timeout×10) |"),
        "{md}"
    );
    cleanup(&dir);

    // No series at all.
    let empty = report(vec![]);
    let dir = temp_dir("empty");
    let written = write_all(&empty, &dir, "empty").unwrap();
    assert_files(&dir, "empty", &written);
    let svg = fs::read_to_string(dir.join("empty-throughput.svg")).unwrap();
    assert!(svg.contains("no data"));
    cleanup(&dir);
}

#[test]
fn open_model_uses_the_target_rate() {
    let mut r = three_series();
    r.params.model = "open".to_owned();
    r.series.truncate(2);
    for s in &mut r.series {
        for (i, p) in s.points.iter_mut().enumerate() {
            p.target_rate = Some(100.0 * 10f64.powi(i as i32));
            p.concurrency = 64;
        }
    }
    let md = render_markdown(&r, "open", &[]);
    assert!(md.contains("| target rps | connections | rps |"), "{md}");
    assert!(md.contains("### rps at each target rate"), "{md}");
    assert!(md.contains("| 1,000 | 41,000 | 43.0 | 0.105% |"), "{md}");
    assert!(!md.contains("## Charts"));
    let dir = temp_dir("open");
    let written = write_all(&r, &dir, "open").unwrap();
    assert_files(&dir, "open", &written);
    let svg = fs::read_to_string(dir.join("open-throughput.svg")).unwrap();
    assert!(svg.contains("target arrival rate"));
    cleanup(&dir);
}
