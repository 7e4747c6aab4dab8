//! `clickstream query`: SQL (polars-sql) over every table of a data
//! directory, registered by name: `silver_events`, `bronze_events`,
//! `rejects` and each Gold table (`sessions`, `traffic_1m`, ...).

use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars::sql::{extract_table_identifiers, SQLContext};

use crate::storage::scan::{has_files, scan_table};
use crate::storage::{GoldTable, Table};

/// How results are printed or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table for the terminal.
    Table,
    Csv,
    /// A JSON array of row objects.
    Json,
    /// Parquet (needs `--output`).
    Parquet,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("SQL error: {0}")]
    Sql(String),
    #[error("unknown table '{name}'; tables: {known}")]
    UnknownTable { name: String, known: String },
    #[error("table '{0}' has no data yet (the aggregator has not written it); run the pipeline first")]
    EmptyTable(String),
    #[error("--format parquet needs --output FILE (Parquet is not written to a terminal)")]
    ParquetNeedsOutput,
    #[error("writing {what}: {source}")]
    Write { what: String, source: std::io::Error },
    #[error("writing the result: {0}")]
    Polars(#[from] PolarsError),
}

/// Every table name `query` knows, in the order `--help` lists them.
pub fn table_names() -> Vec<&'static str> {
    let mut names = vec!["silver_events", "bronze_events", "rejects"];
    names.extend(GoldTable::ALL.iter().map(|t| t.name()));
    names
}

fn scan_by_name(data_dir: &Path, name: &str) -> PolarsResult<Option<LazyFrame>> {
    let table = match name {
        "silver_events" => Some(Table::Silver),
        "bronze_events" => Some(Table::Bronze),
        "rejects" => Some(Table::Rejects),
        _ => None,
    };
    if let Some(t) = table {
        return if has_files(data_dir, t) { scan_table(data_dir, t).map(Some) } else { Ok(None) };
    }
    match GoldTable::from_name(name) {
        Some(g) if has_files(data_dir, g) => scan_table(data_dir, g).map(Some),
        _ => Ok(None),
    }
}

/// Runs one SQL statement and collects the result.
pub fn run(data_dir: &Path, sql: &str) -> Result<DataFrame, QueryError> {
    let known = table_names();
    // Name the problem before Polars does: unknown and empty tables get
    // their own messages.
    let referenced = extract_table_identifiers(sql, false, true).map_err(|e| QueryError::Sql(e.to_string()))?;
    for name in &referenced {
        if !known.contains(&name.as_str()) {
            // A CTE name is a table identifier too; let Polars judge those.
            if sql.to_ascii_lowercase().contains(&format!("{} as", name.to_ascii_lowercase())) {
                continue;
            }
            return Err(QueryError::UnknownTable { name: name.clone(), known: known.join(", ") });
        }
    }
    // Listed anew on each attempt: see `retry_on_swap`.
    crate::storage::scan::retry_on_swap(data_dir, || {
        let mut ctx = SQLContext::new();
        for name in &referenced {
            if !known.contains(&name.as_str()) {
                continue;
            }
            match scan_by_name(data_dir, name)? {
                Some(lf) => ctx.register(name, lf),
                None => return Err(QueryError::EmptyTable(name.clone())),
            }
        }
        let lf = ctx.execute(sql).map_err(|e| QueryError::Sql(e.to_string()))?;
        lf.collect().map_err(|e| QueryError::Sql(e.to_string()))
    })
}

/// Prints or writes a result.
pub fn write(df: &mut DataFrame, format: Format, output: Option<&Path>) -> Result<(), QueryError> {
    let what = output.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let io = |source| QueryError::Write { what: what.clone(), source };
    let mut sink: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?)),
        None if format == Format::Parquet => return Err(QueryError::ParquetNeedsOutput),
        None => Box::new(std::io::stdout().lock()),
    };
    match format {
        Format::Table => {
            writeln!(sink, "{df}").map_err(io)?;
            writeln!(sink, "{} rows", df.height()).map_err(io)?;
        }
        Format::Csv => CsvWriter::new(&mut sink).finish(df)?,
        Format::Json => JsonWriter::new(&mut sink).with_json_format(JsonFormat::Json).finish(df)?,
        Format::Parquet => {
            ParquetWriter::new(&mut sink).with_compression(ParquetCompression::Zstd(None)).finish(df)?;
        }
    }
    sink.flush().map_err(io)?;
    Ok(())
}

/// `query` arguments, kept here so the binary stays thin.
#[derive(clap::Args, Clone, Debug)]
pub struct QueryArgs {
    /// One SQL statement. Tables: silver_events, bronze_events, rejects,
    /// traffic_1m, top_pages_1h, page_transitions_1h, revenue_5m, conversion_10m, sessions, funnel_1h,
    /// entry_pages_1h, exit_pages_1h, sources_1h,
    /// product_performance_1h, goals_1h, custom_events_1h, bot_anomalies,
    /// dim_users, dim_pages, dim_products, dim_date.
    pub sql: String,
    /// Data directory (default ./data).
    #[arg(long, env = "CLICKSTREAM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the result here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}
