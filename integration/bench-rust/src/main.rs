//! Uses each dependency a little, so that the build is a real one (every crate compiled,
//! the proc-macros expanded) and the program runs: `bench-rust --words 3 "a b a c"`.

use clap::Parser;
use itertools::Itertools;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

#[derive(Parser, Debug)]
#[command(about = "counts words (a benchmark fixture)")]
struct Cli {
    /// How many of the most frequent words to print.
    #[arg(long, default_value_t = 3)]
    words: usize,
    /// The text.
    text: Vec<String>,
}

#[derive(thiserror::Error, Debug)]
enum FixtureError {
    #[error("no text given")]
    Empty,
}

bitflags::bitflags! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Seen: u8 {
        const DIGIT = 1;
        const UPPER = 2;
    }
}

#[derive(Serialize, Deserialize, Debug)]
struct Count {
    word: String,
    n: usize,
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    let cli = Cli::parse();
    let text = cli.text.join(" ");
    if text.trim().is_empty() {
        return Err(FixtureError::Empty.into());
    }
    let word = regex::Regex::new(r"[A-Za-z0-9]+")?;
    let counts: Vec<Count> = word
        .find_iter(&text)
        .map(|m| m.as_str().to_lowercase())
        .counts()
        .into_iter()
        .sorted_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)))
        .take(cli.words)
        .map(|(word, n)| Count { word, n })
        .collect();
    let mut seen = Seen::empty();
    for c in text.chars() {
        if c.is_ascii_digit() {
            seen |= Seen::DIGIT;
        }
        if c.is_ascii_uppercase() {
            seen |= Seen::UPPER;
        }
    }
    let lens: SmallVec<[usize; 8]> = counts.iter().map(|c| c.word.len()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let pick: u32 = rng.random_range(0..100);
    log::info!("seen {seen:?}, lengths {lens:?}");
    println!(
        "{} {} {pick}",
        serde_json::to_string(&counts)?,
        hex::encode(text.len().to_be_bytes())
    );
    Ok(())
}
