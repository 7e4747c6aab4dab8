//! How every table file is written: zstd, with full statistics so that
//! readers skip row groups by their min/max, encoded on all cores.
//!
//! Polars' `ParquetWriter` builds the dictionaries of a row group's columns
//! in parallel, but then serialises and compresses every page on the
//! calling thread, one column after the other, after copying a frame of
//! many chunks into one. From the log to Silver, that was most of the two
//! Parquet writes. Here each column is encoded *and* compressed on its own
//! core, straight from its chunks, with Polars' own page encoder; the pages
//! go to Polars' file writer in column order. The file has the schema,
//! metadata and row groups `ParquetWriter` would give it.
//!
//! The encodings are Polars' too, chosen with what we know of our tables:
//! - a text column is dictionary-encoded unless its values are mostly
//!   distinct. Polars decides that by hashing every value into a
//!   cardinality estimate; here a sample of the first values decides, and
//!   the ids and raw events (distinct by construction) are not looked at;
//! - every other column is encoded as Polars encodes it.

use std::collections::HashSet;
use std::io::Write;

use polars::prelude::{
    ArrayRef, CompatLevel, DataFrame, DataType, ParquetCompression, ParquetWriter, PolarsError, PolarsResult, Series,
    StatisticsOptions,
};
use polars_arrow::array::{DictionaryArray, MutableBinaryViewArray, MutableDictionaryArray, TryExtend, Utf8ViewArray};
use polars_parquet::write::{
    array_to_columns, compress, get_dtype_encoding, CompressedPage, Encoding, ParquetType, Version, WriteOptions,
};
use rayon::prelude::*;

/// Rows per row group: Polars' default.
const ROW_GROUP_ROWS: usize = 512 * 512;

/// Text columns whose every value is its own (an event's id, the event as
/// received): always written plain.
const DISTINCT_COLUMNS: [&str; 2] = ["event_id", "raw"];

/// How many values of a text column decide its encoding.
const SAMPLE: usize = 4_096;

/// Above this share of distinct values in the sample, a dictionary is not
/// worth it (Polars' threshold).
const PLAIN_ABOVE: f64 = 0.75;

/// Writes `df` as one Parquet file into `sink`; returns the file's size.
pub fn write_table<W: Write>(sink: W, df: &DataFrame) -> PolarsResult<u64> {
    let compression = ParquetCompression::Zstd(None);
    let statistics = StatisticsOptions::full();
    let options =
        WriteOptions { statistics, compression: compression.into(), version: Version::V1, data_page_size: None };
    let mut writer =
        ParquetWriter::new(sink).with_compression(compression).with_statistics(statistics).batched(df.schema())?;
    let fields = writer.parquet_schema().fields().to_vec();
    let height = df.height();
    let mut offset = 0;
    while offset < height {
        let rows = ROW_GROUP_ROWS.min(height - offset);
        let group = df.slice(offset as i64, rows);
        let columns = group
            .columns()
            .par_iter()
            .zip(&fields)
            .map(|(column, field)| encode_column(column.as_materialized_series(), field, options))
            .collect::<PolarsResult<Vec<_>>>()?;
        // A nested column has a list of pages per leaf.
        let leaves: Vec<Vec<CompressedPage>> = columns.into_iter().flatten().collect();
        writer.write_row_group(rows as u64, &leaves)?;
        offset += rows;
    }
    writer.finish()
}

/// One column of a row group as compressed pages, per Parquet leaf.
fn encode_column(
    series: &Series,
    field: &ParquetType,
    options: WriteOptions,
) -> PolarsResult<Vec<Vec<CompressedPage>>> {
    let chunks: Vec<ArrayRef> = (0..series.n_chunks()).map(|i| series.to_arrow(i, CompatLevel::newest())).collect();
    if series.dtype() == &DataType::String {
        let texts = chunks
            .iter()
            .map(|chunk| {
                chunk.as_any().downcast_ref::<Utf8ViewArray>().ok_or_else(|| {
                    PolarsError::ComputeError(format!("column {} is not text in Arrow", series.name()).into())
                })
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        if DISTINCT_COLUMNS.contains(&series.name().as_str()) || mostly_distinct(&texts) {
            // Plain pages need no copy into one chunk: each chunk gives its own.
            let mut leaves = vec![Vec::new()];
            for chunk in &chunks {
                for pages in encode(chunk, field, options, &[Encoding::Plain])? {
                    leaves[0].extend(pages);
                }
            }
            return Ok(leaves);
        }
        // One dictionary for the whole column chunk, built from every chunk.
        let mut dictionary = MutableDictionaryArray::<u32, MutableBinaryViewArray<str>>::new(false);
        dictionary.reserve(series.len());
        for text in texts {
            dictionary.try_extend(text.iter())?;
        }
        let dictionary: DictionaryArray<u32> = dictionary.into();
        return encode(&dictionary.boxed(), field, options, &[Encoding::RleDictionary]);
    }
    let whole = match chunks.len() {
        1 => chunks.into_iter().next().expect("one chunk"),
        _ => series.rechunk().to_arrow(0, CompatLevel::newest()),
    };
    let encodings = get_dtype_encoding(whole.dtype());
    encode(&whole, field, options, &encodings)
}

/// Whether most of the first values of a text column are distinct.
fn mostly_distinct(texts: &[&Utf8ViewArray]) -> bool {
    let sample: Vec<&str> = texts.iter().flat_map(|t| t.iter().flatten()).take(SAMPLE).collect();
    let distinct: HashSet<&str> = sample.iter().copied().collect();
    !sample.is_empty() && distinct.len() as f64 > PLAIN_ABOVE * sample.len() as f64
}

/// An array's compressed pages, per Parquet leaf.
fn encode(
    array: &ArrayRef,
    field: &ParquetType,
    options: WriteOptions,
    encodings: &[Encoding],
) -> PolarsResult<Vec<Vec<CompressedPage>>> {
    array_to_columns(array, field.clone(), options, encodings)?
        .into_iter()
        .map(|pages| pages.map(|page| Ok(compress(page?, Vec::new(), options.compression)?)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use polars::prelude::*;
    use polars_parquet::read::read_metadata;

    use super::*;

    /// A frame of several chunks, as the aggregator builds them: distinct
    /// ids, repeated and null text, timestamps, numbers and booleans.
    fn frame(chunks: usize, rows: usize) -> DataFrame {
        let mut parts = (0..chunks).map(|c| {
            let n = |i: usize| c * rows + i;
            df!(
                "event_id" => (0..rows).map(|i| format!("event-{:08}", n(i))).collect::<Vec<_>>(),
                "page_path" => (0..rows).map(|i| format!("/page/{}", n(i) % 7)).collect::<Vec<_>>(),
                "referrer" => (0..rows).map(|i| (i % 3 == 0).then(|| format!("https://r{}.example/", n(i) % 2))).collect::<Vec<_>>(),
                "anonymous_id" => (0..rows).map(|i| format!("visitor-{}-{}", n(i), "x".repeat(20))).collect::<Vec<_>>(),
                "nothing" => vec![None::<&str>; rows],
                "revenue" => (0..rows).map(|i| (i % 4 == 0).then_some(n(i) as f64 / 10.0)).collect::<Vec<_>>(),
                "is_bot" => (0..rows).map(|i| i % 5 == 0).collect::<Vec<_>>(),
                "event_ts" => (0..rows).map(|i| 1_700_000_000_000 + n(i) as i64).collect::<Vec<_>>(),
            )
            .unwrap()
            .lazy()
            .with_column(col("event_ts").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
            .collect()
            .unwrap()
        });
        let mut df = parts.next().unwrap();
        for part in parts {
            df.vstack_mut(&part).unwrap();
        }
        df
    }

    fn read(bytes: &[u8]) -> DataFrame {
        ParquetReader::new(Cursor::new(bytes)).finish().unwrap()
    }

    #[test]
    fn a_table_of_many_chunks_reads_back_as_written() {
        let df = frame(5, 3_000);
        assert_eq!(df.first_col_n_chunks(), 5);
        let mut ours = Vec::new();
        write_table(&mut ours, &df).unwrap();
        assert!(read(&ours).equals_missing(&df));

        // The same frame as Polars' own writer gives it, column for column.
        let mut theirs = Vec::new();
        ParquetWriter::new(&mut theirs).finish(&mut df.clone()).unwrap();
        assert_eq!(read(&ours).schema(), read(&theirs).schema());
    }

    #[test]
    fn repeated_text_is_dictionary_encoded_and_distinct_text_plain() {
        let df = frame(3, 2_000);
        let mut bytes = Vec::new();
        write_table(&mut bytes, &df).unwrap();
        let meta = read_metadata(&mut Cursor::new(&bytes)).unwrap();
        let [group] = meta.row_groups.as_slice() else { panic!("one row group: {}", meta.row_groups.len()) };
        let dictionary = |name: &str| {
            let column = group.parquet_columns().iter().find(|c| c.descriptor().path_in_schema[0].as_str() == name);
            column.unwrap().dictionary_page_offset().is_some()
        };
        assert!(dictionary("page_path"));
        assert!(dictionary("referrer"));
        assert!(!dictionary("event_id"));
        assert!(!dictionary("anonymous_id"), "mostly distinct in the sample");
    }

    #[test]
    fn a_long_table_is_split_into_row_groups_and_an_empty_one_has_none() {
        let df = frame(2, ROW_GROUP_ROWS / 2 + 10);
        let mut bytes = Vec::new();
        write_table(&mut bytes, &df).unwrap();
        let meta = read_metadata(&mut Cursor::new(&bytes)).unwrap();
        let rows: Vec<usize> = meta.row_groups.iter().map(polars_parquet::read::RowGroupMetadata::num_rows).collect();
        assert_eq!(rows, [ROW_GROUP_ROWS, 20]);
        assert!(read(&bytes).equals_missing(&df));

        let empty = df.head(Some(0));
        let mut bytes = Vec::new();
        write_table(&mut bytes, &empty).unwrap();
        let back = read(&bytes);
        assert_eq!((back.height(), back.schema()), (0, empty.schema()));
    }
}
