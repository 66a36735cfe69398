//! Yes/no scoring for reward models: the probability that the model answers "yes", read from the
//! first answer token's log-probabilities where the server gives them, else estimated by sampling.

use crate::budget::TaskBudget;
use crate::client::{LlmClient, LlmError};
use crate::types::{ChatRequest, Completion, Usage};
use serde::Serialize;

/// How a score was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMethod {
    /// exp(logprob) of "yes" over "yes" + "no" among the first token's alternatives.
    Logprobs,
    /// The share of sampled answers that start with "yes".
    Sampling,
}

#[derive(Debug, Clone, Serialize)]
pub struct YesScore {
    /// Probability of "yes", 0 to 1.
    pub p_yes: f64,
    pub method: ScoreMethod,
    /// Samples behind a sampling estimate (1 for logprobs).
    pub samples: u32,
    pub usage: Usage,
}

/// Normalized first word of an answer: "Yes." and " YES" are "yes".
fn verdict(text: &str) -> Option<bool> {
    let word: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase();
    match word.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// P(yes) from the first content token's alternatives, if they mention yes or no.
pub fn p_yes_from_logprobs(completion: &Completion) -> Option<f64> {
    let first = completion.logprobs.as_ref()?.first()?;
    let mut alternatives = first.top.clone();
    if alternatives.is_empty() {
        alternatives.push((first.token.clone(), first.logprob));
    }
    let (mut yes, mut no) = (0.0, 0.0);
    for (token, lp) in &alternatives {
        match verdict(token) {
            Some(true) => yes += lp.exp(),
            Some(false) => no += lp.exp(),
            None => {}
        }
    }
    (yes + no > 0.0).then(|| yes / (yes + no))
}

impl LlmClient {
    /// Scores a yes/no question. `request` holds the prompt (it should ask for a one-word
    /// answer); sampling settings are chosen here. With logprobs, one greedy token is asked for;
    /// when the server gives none (or the answer starts with reasoning), `samples` answers are
    /// drawn at temperature 1 and counted.
    pub async fn score_yes(
        &self,
        request: &ChatRequest,
        samples: u32,
        budget: &TaskBudget,
    ) -> Result<YesScore, LlmError> {
        let mut probe = request.clone();
        probe.n = 1;
        probe.temperature = Some(0.0);
        probe.max_tokens = Some(1);
        probe.logprobs = true;
        probe.top_logprobs = Some(20);
        let reply = self.chat(&probe, budget).await?;
        let mut usage = reply.usage;
        if let Some(p) = reply.choices.first().and_then(p_yes_from_logprobs) {
            return Ok(YesScore {
                p_yes: p,
                method: ScoreMethod::Logprobs,
                samples: 1,
                usage,
            });
        }
        let mut sampled = request.clone();
        sampled.n = samples.max(1);
        sampled.temperature = Some(1.0);
        sampled.logprobs = false;
        sampled.top_logprobs = None;
        let reply = self.chat(&sampled, budget).await?;
        usage.add(&reply.usage);
        let verdicts: Vec<bool> = reply
            .choices
            .iter()
            .filter_map(|c| verdict(&c.answer))
            .collect();
        // An answer that is neither counts as half a yes: it says nothing either way.
        let unclear = reply.choices.len() - verdicts.len();
        let yes = verdicts.iter().filter(|v| **v).count() as f64 + unclear as f64 / 2.0;
        let p = if reply.choices.is_empty() {
            0.5
        } else {
            yes / reply.choices.len() as f64
        };
        Ok(YesScore {
            p_yes: p,
            method: ScoreMethod::Sampling,
            samples: reply.choices.len() as u32,
            usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FinishReason, TokenLogprob};

    #[test]
    fn yes_probability_from_alternatives() {
        let c = Completion {
            index: 0,
            answer: "Yes".into(),
            reasoning: None,
            finish_reason: FinishReason("length".into()),
            cut_in_reasoning: false,
            tool_calls: vec![],
            logprobs: Some(vec![TokenLogprob {
                token: "Yes".into(),
                logprob: (0.6f64).ln(),
                top: vec![
                    ("Yes".into(), (0.6f64).ln()),
                    (" yes".into(), (0.1f64).ln()),
                    ("No".into(), (0.1f64).ln()),
                    ("Maybe".into(), (0.2f64).ln()),
                ],
            }]),
        };
        let p = p_yes_from_logprobs(&c).unwrap();
        assert!((p - 0.875).abs() < 1e-9, "{p}");
        let mut none = c.clone();
        none.logprobs = None;
        assert_eq!(p_yes_from_logprobs(&none), None);
        assert_eq!(verdict("No, because"), Some(false));
        assert_eq!(verdict("<think>"), None);
    }
}
