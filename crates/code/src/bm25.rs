//! BM25 retrieval over the visible files, with the issue text as the query (stage 1 adds its top
//! files to the model's own ranking).
//!
//! Written here rather than taken from the `bm25` crate because the tokenizer is the part that
//! matters for code (identifiers split at `_` and camelCase, the whole identifier kept too) and the
//! scoring itself is a dozen lines; the postings are built once per index, lazily, in parallel.

use crate::index::CodeIndex;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

/// Term-frequency saturation and length normalization, the values system.md fixes.
pub const K1: f64 = 1.5;
pub const B: f64 = 0.75;

/// English filler and Python keywords: frequent everywhere, so they only add noise.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "do", "for", "from", "has", "have",
    "if", "in", "into", "is", "it", "its", "not", "of", "on", "or", "so", "such", "that", "the",
    "their", "then", "there", "these", "they", "this", "to", "was", "we", "were", "when", "which",
    "will", "with", "you", "def", "class", "self", "return", "import", "none", "true", "false",
    "elif", "else", "pass", "raise", "try", "except", "while", "lambda", "yield", "assert", "del",
    "global", "nonlocal", "cls", "args", "kwargs",
];

/// The postings of every visible file.
pub(crate) struct Bm25Index {
    files: Vec<u32>,
    lengths: Vec<u32>,
    postings: HashMap<String, Vec<(u32, u32)>>,
    average_length: f64,
}

/// One retrieved file.
#[derive(Debug, Clone, Serialize)]
pub struct Retrieved {
    pub file: String,
    pub score: f64,
}

/// Splits text into lowercase terms: each identifier whole, plus its parts at underscores and
/// camelCase boundaries (`getResponse` gives `getresponse`, `get`, `response`).
pub fn tokenize(text: &str, mut emit: impl FnMut(&str)) {
    let mut lowered = String::new();
    for word in text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
    {
        lowered.clear();
        lowered.push_str(&word.to_ascii_lowercase());
        let whole = lowered.trim_matches('_');
        keep(whole, &mut emit);
        let mut parts = 0;
        for part in split_identifier(word) {
            parts += 1;
            if parts > 1 || part.len() != whole.len() {
                keep(&part, &mut emit);
            }
        }
    }
}

fn keep(term: &str, emit: &mut impl FnMut(&str)) {
    if term.len() >= 2
        && term.len() <= 64
        && !term.bytes().all(|b| b.is_ascii_digit())
        && !STOP_WORDS.contains(&term)
    {
        emit(term);
    }
}

/// Parts of an identifier at `_` and lower-to-upper case changes (`HTTPResponse` stays one part
/// per run of capitals followed by its word: `http`, `response`).
fn split_identifier(word: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for chunk in word.split('_').filter(|c| !c.is_empty()) {
        let chars: Vec<char> = chunk.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let boundary = (chars[i].is_ascii_uppercase() && chars[i - 1].is_ascii_lowercase())
                || (chars[i].is_ascii_uppercase()
                    && chars[i - 1].is_ascii_uppercase()
                    && chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase()));
            if boundary {
                parts.push(
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .to_ascii_lowercase(),
                );
                start = i;
            }
        }
        parts.push(
            chars[start..]
                .iter()
                .collect::<String>()
                .to_ascii_lowercase(),
        );
    }
    parts
}

impl Bm25Index {
    fn build(index: &CodeIndex) -> Bm25Index {
        let files: Vec<u32> = index.visible_files().collect();
        let docs: Vec<(HashMap<String, u32>, u32)> = files
            .par_iter()
            .map(|&f| {
                let mut counts: HashMap<String, u32> = HashMap::new();
                let mut length = 0u32;
                let mut add = |t: &str| {
                    length += 1;
                    *counts.entry(t.to_string()).or_default() += 1;
                };
                // The path is part of the document: an issue naming `admin/options.py` or
                // `ModelAdmin` should find that file even where its body says little.
                tokenize(&index.file(f).path, &mut add);
                if let Some(bytes) = index.content(f) {
                    tokenize(&String::from_utf8_lossy(&bytes), &mut add);
                }
                (counts, length)
            })
            .collect();
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(docs.len());
        for (doc, (counts, length)) in docs.into_iter().enumerate() {
            lengths.push(length);
            for (term, tf) in counts {
                postings.entry(term).or_default().push((doc as u32, tf));
            }
        }
        let total: u64 = lengths.iter().map(|l| *l as u64).sum();
        let average_length = if lengths.is_empty() {
            1.0
        } else {
            (total as f64 / lengths.len() as f64).max(1.0)
        };
        Bm25Index {
            files,
            lengths,
            postings,
            average_length,
        }
    }

    fn scores(&self, query: &str) -> Vec<(u32, f64)> {
        let mut terms: Vec<String> = Vec::new();
        tokenize(query, |t| terms.push(t.to_string()));
        terms.sort_unstable();
        terms.dedup();
        let n = self.files.len() as f64;
        let mut scores = vec![0.0f64; self.files.len()];
        for term in &terms {
            let Some(posting) = self.postings.get(term) else {
                continue;
            };
            let df = posting.len() as f64;
            // The +1 inside the logarithm keeps idf positive for terms in most documents.
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in posting {
                let tf = tf as f64;
                let norm =
                    K1 * (1.0 - B + B * self.lengths[doc as usize] as f64 / self.average_length);
                scores[doc as usize] += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        scores
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0.0)
            .map(|(d, s)| (self.files[d], s))
            .collect()
    }
}

impl CodeIndex {
    /// The `top` visible files that best match `query`, best first (ties by path).
    pub fn retrieve(&self, query: &str, top: usize) -> Vec<Retrieved> {
        let bm25 = self.bm25.get_or_init(|| Bm25Index::build(self));
        let mut scored = bm25.scores(query);
        scored.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.file(a.0).path.cmp(&self.file(b.0).path))
        });
        scored
            .into_iter()
            .take(top)
            .map(|(f, score)| Retrieved {
                file: self.file(f).path.clone(),
                score,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        tokenize(text, |t| out.push(t.to_string()));
        out
    }

    #[test]
    fn identifiers_are_kept_whole_and_split() {
        assert_eq!(terms("getResponse"), ["getresponse", "get", "response"]);
        assert_eq!(terms("HTTPResponse"), ["httpresponse", "http", "response"]);
        assert_eq!(terms("_base_url"), ["base_url", "base", "url"]);
        assert_eq!(terms("the self 42 x"), Vec::<String>::new());
        assert_eq!(terms("Model.save()"), ["model", "save"]);
    }
}
