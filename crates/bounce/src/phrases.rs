//! Tables of structural phrases (the cues that name a failing command, the markers of a
//! returned message) searched in one pass over a text, ignoring ASCII case. The phrases that
//! tell a reason live in the domain's rules file, not here.

use aho_corasick::AhoCorasick;

/// Phrases grouped under a value (a reason, a command), the groups ranked by their order.
pub(crate) struct PhraseTable<T> {
    searcher: AhoCorasick,
    /// The group of each phrase, indexed by pattern id.
    groups: Vec<usize>,
    values: Vec<T>,
}

impl<T: Copy> PhraseTable<T> {
    pub fn new(table: &[(T, &[&str])]) -> Self {
        let mut groups = Vec::new();
        let mut phrases = Vec::new();
        for (group, (_, group_phrases)) in table.iter().enumerate() {
            for phrase in *group_phrases {
                groups.push(group);
                phrases.push(*phrase);
            }
        }
        let searcher = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(phrases)
            .expect("phrase tables are small enough for an automaton");
        PhraseTable {
            searcher,
            groups,
            values: table.iter().map(|(value, _)| *value).collect(),
        }
    }

    /// Every occurrence of every phrase, overlapping ones included: `(start, group, end)`.
    fn find_all<'a>(&'a self, text: &'a str) -> impl Iterator<Item = (usize, usize, usize)> + 'a {
        self.searcher
            .find_overlapping_iter(text)
            .map(|m| (m.start(), self.groups[m.pattern().as_usize()], m.end()))
    }

    /// Every occurrence of every phrase: where it starts, its group's value, where it ends.
    pub fn occurrences<'a>(
        &'a self,
        text: &'a str,
    ) -> impl Iterator<Item = (usize, T, usize)> + 'a {
        self.find_all(text)
            .map(|(start, group, end)| (start, self.values[group], end))
    }
}

/// A set of phrases: does a text hold any of them?
pub(crate) struct PhraseSet(AhoCorasick);

impl PhraseSet {
    pub fn new(phrases: &[&str]) -> Self {
        let searcher = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(phrases)
            .expect("phrase sets are small enough for an automaton");
        PhraseSet(searcher)
    }

    pub fn any_in(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_phrases_are_all_found() {
        let table = PhraseTable::new(&[(1, &["after end of "][..]), (2, &["after "])]);
        let found: Vec<_> = table.occurrences("after end of data").collect();
        assert_eq!(found, [(0, 2, 6), (0, 1, 13)]);
    }
}
