//! The study's Markdown and charts.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::{Measured, StoreResult, StudyResult};

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn count(v: f64) -> String {
    let whole = v.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn errors(m: &Measured) -> String {
    if m.errors == 0 {
        "0".into()
    } else {
        let first = m.first_error.as_deref().unwrap_or_default();
        let first: String = first.chars().take(90).collect();
        format!("{} ({})", count(m.errors as f64), first.replace('|', "/"))
    }
}

fn header(out: &mut String, first: &str, stores: &[StoreResult]) {
    let _ = write!(out, "| {first} |");
    for store in stores {
        let _ = write!(out, " {} |", store.store);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(stores.len()));
    out.push('\n');
}

/// One table of reads: a row per query, a cell per store with p50 / p99 and requests/s.
fn reads_table(out: &mut String, stores: &[StoreResult], pick: fn(&StoreResult) -> &Vec<Measured>) {
    header(out, "query: p50 / p99 ms (requests/s)", stores);
    let Some(first) = stores.first() else { return };
    for (i, query) in pick(first).iter().enumerate() {
        let _ = write!(out, "| {} |", query.name);
        for store in stores {
            match pick(store).get(i) {
                Some(m) if m.ops > 0 => {
                    let _ = write!(
                        out,
                        " {} / {} ({})",
                        ms(m.p50_ms),
                        ms(m.p99_ms),
                        count(m.ops_per_sec())
                    );
                    if m.errors > 0 {
                        let _ = write!(out, ", {} errors", count(m.errors as f64));
                    }
                    out.push_str(" |");
                }
                Some(m) => {
                    let _ = write!(out, " failed: {} |", errors(m));
                }
                None => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    out.push('\n');
}

pub fn markdown(result: &StudyResult, stem: &str, preamble: &str, conclusion: &str) -> String {
    let stores = &result.stores;
    let mut out = String::new();
    out.push_str("# Where to keep ratings, reviews and bookmarks\n\n");
    out.push_str(preamble.trim_end());
    out.push_str("\n\n");
    let s = &result.scale;
    let _ = writeln!(
        out,
        "## The data\n\n{} ratings, {} reviews and {} bookmarks by {} users on {} films, the same rows \
         in every store, generated from a seed. A film's share falls as 1/rank: the most popular film \
         has {} ratings, the median one a handful. Keys are drawn the same way: popular films are \
         read more.\n",
        count(s.ratings as f64),
        count(s.reviews as f64),
        count(s.bookmarks as f64),
        count(s.users as f64),
        count(f64::from(s.films)),
        count(stores.first().map_or(0, |store| store.top_film_totals.1) as f64),
    );
    let _ = writeln!(
        out,
        "Every phase: {} clients back to back for {} s after a {} s warm-up; \"with writes\" adds {} \
         ratings/s in batches of 100 in the background. {} cores for everything: the stores, and \
         the load tool.\n",
        result.clients,
        result.duration_secs,
        result.warmup_secs,
        count(f64::from(result.background_ratings_per_sec)),
        result.cores
    );

    out.push_str("## Loading and size\n\n");
    header(&mut out, "", stores);
    let load_names: Vec<String> = stores
        .first()
        .map(|store| store.load.iter().map(|step| step.what.clone()).collect())
        .unwrap_or_default();
    for (i, what) in load_names.iter().enumerate() {
        let _ = write!(out, "| load {what}, s (rows/s) |");
        for store in stores {
            match store.load.get(i) {
                Some(step) if step.rows > 0 => {
                    let _ = write!(
                        out,
                        " {:.1} ({}) |",
                        step.secs,
                        count(step.rows as f64 / step.secs.max(1e-9))
                    );
                }
                Some(step) => {
                    let _ = write!(out, " {:.1} |", step.secs);
                }
                None => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    out.push_str("| size, MiB |");
    for store in stores {
        let _ = write!(
            out,
            " {:.0} |",
            store.footprint_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    out.push_str("\n| a check: the top film's sum / count |");
    for store in stores {
        let _ = write!(
            out,
            " {} / {} |",
            store.top_film_totals.0, store.top_film_totals.1
        );
    }
    out.push_str("\n| version |");
    for store in stores {
        let _ = write!(out, " {} |", store.version);
    }
    out.push_str("\n\nWhat the size counts: ");
    let sizes: Vec<String> = stores
        .iter()
        .map(|store| format!("{}: {}", store.store, store.footprint_what))
        .collect();
    out.push_str(&sizes.join("; "));
    out.push_str(".\n\n");

    out.push_str("## Writes\n\n");
    header(&mut out, "", stores);
    let write_names: Vec<String> = stores
        .first()
        .map(|store| store.writes.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    for (i, name) in write_names.iter().enumerate() {
        for (what, cell) in [
            (
                "ratings/s",
                (|m: &Measured| count(m.rows_per_sec())) as fn(&Measured) -> String,
            ),
            ("p50 / p99 ms per request", |m: &Measured| {
                format!("{} / {}", ms(m.p50_ms), ms(m.p99_ms))
            }),
            ("errors", errors),
        ] {
            let _ = write!(out, "| {name}: {what} |");
            for store in stores {
                let _ = write!(
                    out,
                    " {} |",
                    store.writes.get(i).map(cell).unwrap_or_else(|| "-".into())
                );
            }
            out.push('\n');
        }
    }
    out.push('\n');

    out.push_str("## Reads alone\n\n");
    reads_table(&mut out, stores, |store| &store.reads);
    let _ = writeln!(out, "![p99 of each read, alone]({stem}-reads.png)\n");
    out.push_str("## Reads while ratings arrive\n\n");
    reads_table(&mut out, stores, |store| &store.reads_with_writes);
    out.push_str("The background ratings meanwhile:\n\n");
    header(&mut out, "", stores);
    out.push_str("| ratings/s written |");
    for store in stores {
        let _ = write!(out, " {} |", count(store.background.rows_per_sec()));
    }
    out.push_str("\n| p50 / p99 ms per batch of 100 |");
    for store in stores {
        let _ = write!(
            out,
            " {} / {} |",
            ms(store.background.p50_ms),
            ms(store.background.p99_ms)
        );
    }
    out.push_str("\n| errors or batches not sent |");
    for store in stores {
        let _ = write!(out, " {} |", errors(&store.background));
    }
    out.push_str("\n\n");
    let _ = writeln!(
        out,
        "![p99 of each read, with writes]({stem}-reads-with-writes.png)\n"
    );

    // The schemas, then the choice: the report ends with what it decided.
    out.push_str("## The schemas, as created\n\n");
    for store in stores {
        let language = match store.store.as_str() {
            "tarantool" => "lua",
            "redis" => "text",
            _ => "sql",
        };
        let _ = writeln!(
            out,
            "### {}\n\n```{language}\n{}\n```\n",
            store.store,
            store.schema.trim()
        );
    }
    out.push_str(conclusion.trim_end());
    out.push('\n');
    out
}

pub fn charts(result: &StudyResult, dir: &Path, stem: &str) -> Result<()> {
    for (suffix, title, pick) in [
        (
            "reads",
            "p99 of each read, alone (ms)",
            (|store: &StoreResult| &store.reads) as fn(&StoreResult) -> &Vec<Measured>,
        ),
        (
            "reads-with-writes",
            "p99 of each read while ratings arrive (ms)",
            |store: &StoreResult| &store.reads_with_writes,
        ),
    ] {
        let Some(first) = result.stores.first() else {
            return Ok(());
        };
        let groups: Vec<String> = pick(first).iter().map(|m| short(&m.name)).collect();
        let series: Vec<(String, Vec<Option<f64>>)> = result
            .stores
            .iter()
            .map(|store| {
                let values = pick(store)
                    .iter()
                    .map(|m| (m.ops > 0).then_some(m.p99_ms))
                    .collect();
                (store.store.clone(), values)
            })
            .collect();
        crate::report::grouped_bars(
            &dir.join(format!("{stem}-{suffix}.svg")),
            title,
            "ms",
            &groups,
            &series,
            true,
        )?;
    }
    Ok(())
}

/// Bar labels must be short.
fn short(name: &str) -> String {
    match name {
        "a user's rating of a film" => "user's rating".into(),
        "a film's average and count" => "film average".into(),
        "a film's reviews, newest first" => "reviews, newest".into(),
        "a film's reviews, most liked first" => "reviews, top".into(),
        "a user's bookmarks" => "bookmarks".into(),
        other => other.into(),
    }
}
