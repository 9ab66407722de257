//! `paycore fx`: the platform's exchange rates, which cross-currency
//! transfers convert at.
//!
//! Like `paycore keys`, each command opens the store itself when no server
//! holds the data directory (and always with PostgreSQL, where running
//! servers see the change in the shared log), and otherwise goes through the
//! running server's admin socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use paycore_domain::kernel::fx::{BPS_PER_UNIT, Quote, Rate};
use paycore_domain::{Currency, Timestamp};
use paycore_grpc::admin;

use crate::serve::{self, StoreChoice};

/// How `paycore fx import` reads a file (also the `fx list` output).
const FILE_FORMAT: &str = "\
One rate per line: FROM TO MID_RATE [SPREAD_BPS], separated by spaces, for example

    # EUR to US dollars, 0.30 % spread
    EUR USD 1.0842 30
    USD EUR 0.9201 30
    EUR JPY 163.25        # no spread

FROM and TO are ISO 4217 codes, MID_RATE a positive decimal with up to 9
decimals, SPREAD_BPS basis points from 0 to 9999 (0 when left out). `#` starts
a comment up to the end of the line; blank lines are ignored. A pair may appear
only once. The whole file is checked before anything is set: one bad line and
nothing is imported. The rates are then set in file order, each on its own (a
failure part way leaves the lines before it set). Pairs not in the file keep
their rates. `paycore fx list` prints this same format.";

#[derive(Debug, Subcommand)]
pub enum FxCommand {
    /// Set (or replace) the exchange rate of one ordered currency pair.
    ///
    /// Transfers from a FROM account to a TO account convert at it from now
    /// on (earlier transfers keep the rate they recorded): the rate used is
    /// MID_RATE less the spread, rounded down to 9 decimals, and the amount
    /// credited is rounded down to a whole minor unit of TO. Each direction
    /// is configured on its own: EUR USD says nothing about USD EUR.
    Set {
        /// The currency converted from (ISO 4217, e.g. EUR).
        from: Currency,
        /// The currency converted to (ISO 4217, e.g. USD).
        to: Currency,
        /// Units of TO one unit of FROM buys: a positive decimal with up to
        /// 9 decimals, such as 1.0842.
        mid_rate: Rate,
        /// The spread taken from the customer, in basis points (30 = 0.30 %),
        /// 0 to 9999.
        #[arg(long, default_value_t = 0)]
        spread_bps: u32,
    },
    /// Remove the exchange rate of one ordered pair: transfers between them
    /// are refused (FX_RATE_NOT_CONFIGURED) from then on.
    Remove {
        /// The currency converted from.
        from: Currency,
        /// The currency converted to.
        to: Currency,
    },
    /// Print the configured rates, in the format `fx import` reads (with
    /// the rate used and when it was set as comments).
    List,
    /// Set many rates from a file.
    #[command(after_long_help = FILE_FORMAT)]
    Import {
        /// The file of rates (format below; any extension).
        file: PathBuf,
    },
}

pub async fn run(data_dir: &Path, store: &StoreChoice, command: FxCommand) -> anyhow::Result<()> {
    match command {
        FxCommand::Set {
            from,
            to,
            mid_rate,
            spread_bps,
        } => {
            let quote = Quote::new(from, to, mid_rate, spread_bps)?;
            let rates = set(data_dir, store, vec![quote]).await?;
            rates.iter().for_each(|rate| println!("set {}", rate_line(rate)));
            Ok(())
        }
        FxCommand::Remove { from, to } => {
            remove(data_dir, store, from, to).await?;
            println!("removed the exchange rate {from} {to}");
            Ok(())
        }
        FxCommand::List => {
            print!("{}", list_text(&list(data_dir, store).await?));
            Ok(())
        }
        FxCommand::Import { file } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let quotes = parse_rates(&text).map_err(|errors| {
                anyhow::anyhow!("{}: nothing was imported:\n{}", file.display(), errors.join("\n"))
            })?;
            let rates = set(data_dir, store, quotes).await?;
            println!("imported {} exchange rates", rates.len());
            Ok(())
        }
    }
}

/// Sets `quotes` in order; answers the rates as set.
async fn set(
    data_dir: &Path,
    store: &StoreChoice,
    quotes: Vec<Quote>,
) -> anyhow::Result<Vec<admin::pb::FxRate>> {
    let direct_quotes = quotes.clone();
    let direct = serve::with_engine(data_dir, store, |engine| async move {
        let mut rates = Vec::with_capacity(direct_quotes.len());
        for quote in direct_quotes {
            let (entry, _) = admin::set_fx_rate(&engine, quote)
                .await
                .with_context(|| format!("setting {} {}", quote.from, quote.to))?;
            rates.extend(admin::fx_rate_pb(&entry));
        }
        Ok(rates)
    });
    if let Some(rates) = direct.await? {
        return Ok(rates);
    }
    let mut client = crate::admin_client(data_dir).await?;
    let mut rates = Vec::with_capacity(quotes.len());
    for quote in quotes {
        let request = admin::pb::SetFxRateRequest {
            source_currency: quote.from.to_string(),
            destination_currency: quote.to.to_string(),
            mid_rate: quote.mid.to_string(),
            spread_bps: quote.spread_bps,
        };
        let rate = client
            .set_fx_rate(request)
            .await
            .map_err(crate::refused)
            .with_context(|| format!("setting {} {}", quote.from, quote.to))?;
        rates.push(rate.into_inner());
    }
    Ok(rates)
}

async fn remove(data_dir: &Path, store: &StoreChoice, from: Currency, to: Currency) -> anyhow::Result<()> {
    let direct = serve::with_engine(data_dir, store, |engine| async move {
        admin::remove_fx_rate(&engine, from, to).await?;
        Ok(())
    });
    if direct.await?.is_some() {
        return Ok(());
    }
    let request = admin::pb::RemoveFxRateRequest {
        source_currency: from.to_string(),
        destination_currency: to.to_string(),
    };
    crate::admin_client(data_dir)
        .await?
        .remove_fx_rate(request)
        .await
        .map_err(crate::refused)?;
    Ok(())
}

async fn list(data_dir: &Path, store: &StoreChoice) -> anyhow::Result<Vec<admin::pb::FxRate>> {
    let direct = serve::with_engine(data_dir, store, |engine| async move {
        let entries = admin::list_fx_rates(&engine).await?;
        Ok(entries.iter().filter_map(admin::fx_rate_pb).collect())
    });
    if let Some(rates) = direct.await? {
        return Ok(rates);
    }
    let rates = crate::admin_client(data_dir)
        .await?
        .list_fx_rates(admin::pb::ListFxRatesRequest {})
        .await
        .map_err(crate::refused)?
        .into_inner()
        .rates;
    Ok(rates)
}

// ---------------------------------------------------------------- the file format

/// One rate as a line of the file format, with what is not part of the
/// format (the rate used, when it was set) as a comment.
fn rate_line(rate: &admin::pb::FxRate) -> String {
    let rate_used = if rate.rate_used.is_empty() {
        "rounds to zero".to_owned()
    } else {
        rate.rate_used.clone()
    };
    format!(
        "{} {} {} {}  # rate used {rate_used}, set {}",
        rate.source_currency,
        rate.destination_currency,
        rate.mid_rate,
        rate.spread_bps,
        rfc3339(Timestamp::from_micros(rate.updated_at_micros))
    )
}

fn list_text(rates: &[admin::pb::FxRate]) -> String {
    if rates.is_empty() {
        return "# no exchange rates are configured\n".to_owned();
    }
    let mut out = "# FROM TO MID_RATE SPREAD_BPS\n".to_owned();
    for rate in rates {
        out.push_str(&rate_line(rate));
        out.push('\n');
    }
    out
}

fn rfc3339(at: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.micros()) * 1_000)
        .ok()
        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{} µs", at.micros()))
}

/// One line of a rates file: `None` for a blank or comment-only line.
fn parse_line(line: &str) -> Result<Option<Quote>, String> {
    let content = line.split_once('#').map_or(line, |(content, _)| content);
    let fields: Vec<&str> = content.split_whitespace().collect();
    let (from, to, mid, spread) = match fields.as_slice() {
        [] => return Ok(None),
        [from, to, mid] => (from, to, mid, "0"),
        [from, to, mid, spread] => (from, to, mid, *spread),
        _ => {
            return Err(format!(
                "expected FROM TO MID_RATE [SPREAD_BPS], found {} fields",
                fields.len()
            ));
        }
    };
    let from: Currency = from.parse().map_err(|error| format!("{error}"))?;
    let to: Currency = to.parse().map_err(|error| format!("{error}"))?;
    let mid = Rate::parse(mid).map_err(|error| error.to_string())?;
    let spread_bps: u32 = spread
        .parse()
        .ok()
        .filter(|bps| *bps < BPS_PER_UNIT)
        .ok_or_else(|| format!("spread {spread:?} must be a whole number of basis points from 0 to 9999"))?;
    Quote::new(from, to, mid, spread_bps)
        .map(Some)
        .map_err(|error| error.to_string())
}

/// Every rate of a file, or every problem of it (`line N: …`).
fn parse_rates(text: &str) -> Result<Vec<Quote>, Vec<String>> {
    let mut quotes = Vec::new();
    let mut seen: BTreeMap<(Currency, Currency), usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some(quote)) => match seen.insert((quote.from, quote.to), number) {
                Some(first) => errors.push(format!(
                    "line {number}: {} {} was already given on line {first}",
                    quote.from, quote.to
                )),
                None => quotes.push(quote),
            },
            Err(error) => errors.push(format!("line {number}: {error}")),
        }
    }
    if errors.is_empty() {
        Ok(quotes)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let example: String = FILE_FORMAT
            .lines()
            .filter_map(|line| line.strip_prefix("    "))
            .map(|line| format!("{line}\n"))
            .collect();
        let quotes = parse_rates(&example).unwrap();
        let shown: Vec<String> = quotes
            .iter()
            .map(|q| format!("{} {} {} {}", q.from, q.to, q.mid, q.spread_bps))
            .collect();
        assert_eq!(
            shown,
            ["EUR USD 1.0842 30", "USD EUR 0.9201 30", "EUR JPY 163.25 0"]
        );
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "EUR USD 1.0842 30\n\
                    EUR usd 1.1\n\
                    EUR USD 1.2\n\
                    EUR GBP -1\n\
                    EUR GBP 0.85 10000\n\
                    EUR EUR 1\n\
                    EUR\n\
                    # fine\n\
                    \n\
                    GBP EUR 1.17 5 extra\n";
        let errors = parse_rates(text).unwrap_err();
        let lines: Vec<&str> = errors
            .iter()
            .map(|error| error.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            lines,
            [
                "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 10"
            ]
        );
        assert!(errors[1].contains("already given on line 1"), "{}", errors[1]);
    }

    #[test]
    fn list_output_reads_back_as_an_import() {
        let rate = admin::pb::FxRate {
            source_currency: "EUR".into(),
            destination_currency: "USD".into(),
            mid_rate: "1.0842".into(),
            spread_bps: 30,
            rate_used: "1.0809474".into(),
            updated_at_micros: 1_700_000_000_000_000,
        };
        let text = list_text(&[rate]);
        assert!(
            text.contains("rate used 1.0809474, set 2023-11-14T22:13:20Z"),
            "{text}"
        );
        let quotes = parse_rates(&text).unwrap();
        assert_eq!(quotes.len(), 1);
        assert_eq!(quotes[0].mid.to_string(), "1.0842");
        assert_eq!(list_text(&[]), "# no exchange rates are configured\n");
    }
}
