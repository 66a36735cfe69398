//! Reasoning split from the answer, whichever way the server delivers it: a separate
//! `reasoning_content` field (vLLM and SGLang with a reasoning parser), or inline in the content
//! as `<think>...</think>` (R1-style models served without a parser), optionally followed by an
//! `<answer>...</answer>` wrapper. A sample that ends before its reasoning does is reported as
//! cut in its reasoning, with no answer.

/// A sample's text after the split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    pub reasoning: Option<String>,
    pub answer: String,
    pub cut_in_reasoning: bool,
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Splits one sample. `field` is the server's separate reasoning text, if any; `length_cut` says
/// the token limit stopped the sample.
pub fn split(content: &str, field: Option<&str>, length_cut: bool) -> Split {
    let field = field.filter(|r| !r.is_empty());
    if let Some(reasoning) = field {
        let answer = unwrap_answer(content.trim_start());
        // With a reasoning parser, a sample cut while thinking has reasoning and no content.
        let cut = length_cut && answer.trim().is_empty();
        return Split {
            reasoning: Some(reasoning.to_string()),
            answer,
            cut_in_reasoning: cut,
        };
    }
    let text = content.trim_start();
    if let Some(rest) = text.strip_prefix(OPEN) {
        return match rest.find(CLOSE) {
            Some(end) => Split {
                reasoning: Some(rest[..end].trim().to_string()),
                answer: unwrap_answer(rest[end + CLOSE.len()..].trim_start()),
                cut_in_reasoning: false,
            },
            // Opened and never closed: whatever stopped it, the answer never came.
            None => Split {
                reasoning: Some(rest.trim().to_string()),
                answer: String::new(),
                cut_in_reasoning: true,
            },
        };
    }
    // Chat templates that put `<think>` into the prompt leave only the closing tag in the reply.
    if let Some(end) = text.find(CLOSE)
        && !text[..end].contains(OPEN)
    {
        return Split {
            reasoning: Some(text[..end].trim().to_string()),
            answer: unwrap_answer(text[end + CLOSE.len()..].trim_start()),
            cut_in_reasoning: false,
        };
    }
    Split {
        reasoning: None,
        answer: unwrap_answer(text),
        cut_in_reasoning: false,
    }
}

/// `<answer>x</answer>` becomes `x`; an unclosed wrapper (cut off) keeps what came.
fn unwrap_answer(text: &str) -> String {
    let Some(inner) = text.trim_end().strip_prefix("<answer>") else {
        return text.to_string();
    };
    inner
        .strip_suffix("</answer>")
        .unwrap_or(inner)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_delivery_of_reasoning_is_split() {
        let s = split("Final: 4", Some("2+2 is 4"), false);
        assert_eq!(
            (
                s.reasoning.as_deref(),
                s.answer.as_str(),
                s.cut_in_reasoning
            ),
            (Some("2+2 is 4"), "Final: 4", false)
        );

        let s = split(
            "<think>\nfirst, add\n</think>\n\nThe sum is 4.",
            None,
            false,
        );
        assert_eq!(
            (s.reasoning.as_deref(), s.answer.as_str()),
            (Some("first, add"), "The sum is 4.")
        );

        let s = split("<think>add</think><answer>\n4\n</answer>", None, false);
        assert_eq!(s.answer, "4");

        let s = split("add them up</think>4", None, false);
        assert_eq!(
            (s.reasoning.as_deref(), s.answer.as_str()),
            (Some("add them up"), "4")
        );

        let s = split("plain answer with a </thinking> word", None, false);
        assert_eq!(
            (s.reasoning, s.answer.as_str()),
            (None, "plain answer with a </thinking> word")
        );
    }

    #[test]
    fn samples_cut_while_reasoning_are_reported() {
        let s = split("<think>still going and going", None, true);
        assert!(s.cut_in_reasoning);
        assert_eq!(
            (s.reasoning.as_deref(), s.answer.as_str()),
            (Some("still going and going"), "")
        );
        let s = split("", Some("half a thought"), true);
        assert!(s.cut_in_reasoning);
        let s = split("short answer", Some("thought"), true);
        assert!(!s.cut_in_reasoning, "cut in the answer, not the reasoning");
        let s = split("<think>done</think><answer>partial", None, true);
        assert_eq!((s.answer.as_str(), s.cut_in_reasoning), ("partial", false));
    }
}
