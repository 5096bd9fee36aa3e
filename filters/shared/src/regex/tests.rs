use super::reference::answer as reference;
use super::Regex;
use wasm_bindgen_test::wasm_bindgen_test;

fn matches(pattern: &str, text: &str) -> bool {
    match Regex::whole(pattern, false) {
        Ok(regex) => regex.is_match(text),
        Err(e) => panic!("{pattern:?} refused: {e}"),
    }
}

fn refusal(pattern: &str) -> String {
    match Regex::whole(pattern, false) {
        Ok(_) => panic!("{pattern:?} accepted"),
        Err(e) => e.to_string(),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn matches_the_whole_text_only() {
    assert!(matches("/orders/[0-9]+", "/orders/42"));
    assert!(!matches("/orders/[0-9]+", "/orders/42/items"));
    assert!(!matches("/orders/[0-9]+", "x/orders/42"));
    assert!(matches("/orders/[0-9]+/?", "/orders/42/"));
    assert!(matches("", ""));
    assert!(!matches("", "a"));
    assert!(matches("a|b", "b"));
    assert!(!matches("a|b", "ab"));
}

#[wasm_bindgen_test(unsupported = test)]
fn repetitions_count() {
    assert!(matches("a{2}", "aa"));
    assert!(!matches("a{2}", "aaa"));
    assert!(matches("a{2,}", "aaaa"));
    assert!(!matches("a{2,}", "a"));
    assert!(matches("(ab){1,2}", "abab"));
    assert!(!matches("(ab){1,2}", "ababab"));
    assert!(matches("a*?b+?c??", "bb"));
    assert!(matches("(a*)*", "aaa"));
    assert!(matches("(a|)*b", "aab"));
}

#[wasm_bindgen_test(unsupported = test)]
fn classes_escapes_and_assertions() {
    assert!(matches(r"[^/]+\.json", "a.json"));
    assert!(!matches(r"[^/]+\.json", "a/b.json"));
    assert!(!matches(r"[^/]+\.json", "axjson"));
    assert!(matches(r"\/api\/v\d", "/api/v2"));
    assert!(matches(r"[]a]+", "]a]"));
    assert!(matches(r"[a-]+", "a-a"));
    assert!(matches(r"[[:alpha:]_]+", "ab_C"));
    assert!(!matches(r"[[:^alpha:]]", "a"));
    assert!(matches(r"\x41\u0042\x{43}", "ABC"));
    assert!(matches(r"\bword\b", "word"));
    assert!(matches(r"a\B.", "ab"));
    assert!(matches(r"\<a.\>-", "ab-"));
    assert!(!matches(r"a\<b", "ab"));
    assert!(!matches(r"a\b.", "ab"));
    assert!(matches("(?m)a$\n^b", "a\nb"));
    assert!(!matches("a.b", "a\nb"));
    assert!(matches("(?s)a.b", "a\nb"));
    assert!(matches("caf.", "café"));
    assert!(matches(r"\d+", "0123456789"));
    assert!(!matches(r"\d", "٣"));
}

#[wasm_bindgen_test(unsupported = test)]
fn case_insensitivity_is_ascii_and_scoped() {
    assert!(Regex::whole("X-Debug-.*", true).is_ok_and(|r| r.is_match("x-debug-trace")));
    assert!(matches("(?i)abc", "AbC"));
    assert!(matches("a(?i)b", "aB"));
    assert!(!matches("a(?i)b", "AB"));
    assert!(matches("(?i:a)b", "Ab"));
    assert!(!matches("(?i:a)b", "AB"));
    assert!(matches("((?i)a)b", "Ab"));
    assert!(!matches("((?i)a)b", "AB"));
    assert!(matches("(?i)[^a]", "b"));
    assert!(!matches("(?i)[^a]", "A"));
    assert!(matches("(?i)[x-z]", "Y"));
    assert!(!matches("(?i)é", "É"));
    assert!(Regex::whole("(?-i)a", true).is_ok_and(|r| !r.is_match("A")));
    // A range holding letters of both cases: each letter in it stands for both of its cases.
    for (pattern, text) in [
        ("[0-o]", "s"),
        ("[0-o]", "S"),
        ("[0-o]", "b"),
        ("[0-ordDor]", "s"),
        ("[Z-a]", "z"),
    ] {
        assert!(
            Regex::whole(pattern, true).is_ok_and(|r| r.is_match(text)),
            "{pattern} {text}"
        );
    }
    assert!(matches("(?i)[0-o]", "s"));
    assert!(matches("a(?i:[0-o])", "as"));
    assert!(!matches("[0-o]", "s"));
    assert!(!Regex::whole("[0-o]", true).is_ok_and(|r| r.is_match("~")));
}

/// `regex-lite` 0.1.9 gives such a range the other case of its lower-case letters only, so it is
/// no reference there: the comparison leaves those patterns out. When this fails, `regex-lite`
/// folds such ranges in full, and `reference::may_hit_one_sided_fold` can go.
#[wasm_bindgen_test(unsupported = test)]
fn regex_lite_folds_a_range_of_both_cases_on_one_side() {
    let lite = regex_lite::Regex::new("(?i)^[0-o]$").unwrap();
    assert!(lite.is_match("S") && lite.is_match("b") && lite.is_match("B"));
    assert!(!lite.is_match("s"), "regex-lite now folds both sides");
    assert_eq!(reference("[0-o]", true, "s"), None);
    assert_eq!(reference("(?i)[0-o]", false, "s"), None);
    assert_eq!(reference("a(?i:[0-o])", false, "as"), None);
    // No range of both cases, or no case insensitivity: the reference answers.
    assert_eq!(reference("[0-O]", true, "o"), Some(true));
    assert_eq!(reference("[0-o]", false, "s"), Some(false));
    assert_eq!(reference("(?x-i)[0-o]", false, "s"), Some(false));
    assert_eq!(reference("[0-z]", true, "s"), Some(true));
    assert_eq!(
        reference("x-(tenant|shard)-override", true, "X-SHARD-OVERRIDE"),
        Some(true)
    );
    assert_eq!(reference(r"[\--o]", true, "s"), None);
    assert_eq!(reference("(?x)[0 - o]", true, "s"), None);
    assert_eq!(reference("[]-o]", true, "s"), Some(false));
    assert_eq!(reference("[^0-o]", true, "s"), None);
    // A leading `-` is a member, and the `]` after it closes the class.
    assert_eq!(reference("[-]0-b", true, "-0-B"), Some(true));
}

#[wasm_bindgen_test(unsupported = test)]
fn verbose_mode_ignores_spaces_and_comments() {
    assert!(matches("(?x) a b # the rest\n c", "abc"));
    assert!(matches(r"(?x) a\ b", "a b"));
}

/// As `regex-lite` reads them: spaces and comments in a class are skipped after `[` and `^`,
/// between leading `-`s, and around a range's `-`.
#[wasm_bindgen_test(unsupported = test)]
fn verbose_mode_skips_spaces_in_a_class_as_regex_lite_does() {
    assert!(matches("(?x)[ ^a]", "b") && !matches("(?x)[ ^a]", "a"));
    assert!(matches("(?x)[a -z]", "m") && matches("(?x)[a - z]", "m") && !matches("(?x)[a - z]", " "));
    assert!(matches("(?x)[- - a]", "-") && !matches("(?x)[- - a]", "0"));
    assert!(matches("(?x)[a - ]", "-") && !matches("(?x)[a - ]", "b"));
    assert_eq!(
        refusal("(?x)[> -(]"),
        "class range '>'-'(' ends before it starts (at byte 7)"
    );
    assert!(refusal(r"(?x)[\d -a]").starts_with("a range must start with a character"));
    assert!(refusal("(?x)[] -a]").starts_with("a range from a leading `]`"));
    assert!(refusal("(?x)[- -- a]").starts_with("class set operations (`--`)"));
    assert!(refusal("(?x)[a- #c\nz]").starts_with("a comment right after `-`"));
    let texts = ["a", "b", "m", "z", "-", "^", "0", " ", "#", "]", "(", ">", "c"];
    for pattern in [
        "(?x)[ ^a]",
        "(?x)[a -z]",
        "(?x)[a - #to\n z]",
        "(?x)[- - a]",
        "(?x)[a - ]",
        "(?x)[a - - b]",
        "(?x)[> -(]",
        r"(?x)[\d -a]",
        "(?x)[] -a]",
        "(?x)[a- #c\nz]",
        "(?x)[a- #c\n]",
        "(?x)\n<[n>\n-(6\n.vxu)\n?P\n?u)|dvxu)\n\na]-<?P",
    ] {
        if let Some(disagreement) = super::reference::disagreement(pattern, false, &texts) {
            panic!("{disagreement:?}");
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn refusals_say_what_and_where() {
    assert_eq!(refusal("("), "unclosed group (at byte 0)");
    assert_eq!(refusal("a)"), "unopened group: `)` without its `(` (at byte 1)");
    assert_eq!(refusal("[a"), "unclosed class: expected `]` (at byte 0)");
    assert_eq!(refusal("*a"), "repetition of nothing (at byte 0)");
    assert_eq!(
        refusal("a**"),
        "repetition of a repetition: put the inner one in a group (at byte 2)"
    );
    assert_eq!(
        refusal("a{3,2}"),
        "counted repetition whose maximum is below its minimum (at byte 6)"
    );
    assert_eq!(refusal("a{1001}"), "counted repetition over 1000 (at byte 2)");
    assert_eq!(
        refusal(r"\p{L}"),
        "Unicode classes (`\\p`, `\\P`) are not supported (at byte 0)"
    );
    assert_eq!(
        refusal(r"[z-a]"),
        "class range 'z'-'a' ends before it starts (at byte 2)"
    );
    assert_eq!(
        refusal(r"[a[b]]"),
        "nested classes are not supported: escape `[` as `\\[` (at byte 2)"
    );
    assert_eq!(
        refusal(r"[a&&b]"),
        "class set operations (`&&`) are not supported (at byte 2)"
    );
    assert_eq!(refusal(r"\q"), "unknown escape `\\q` (at byte 0)");
    assert_eq!(
        refusal("(?R)a"),
        "unsupported flag 'R' (i, m, s, x, U and u are) (at byte 2)"
    );
    assert_eq!(refusal("(?)"), "empty flag group (at byte 2)");
    assert!(refusal("(?i-)").starts_with("`-` without a flag"));
    assert!(refusal("a\\").starts_with("pattern ends with a lone"));
    assert_eq!(
        refusal("(?P<nom>a)(?P<nom>b)"),
        "repeated group name \"nom\" (at byte 14)"
    );
    assert_eq!(refusal("(?P<1st>a)"), "invalid group name \"1st\" (at byte 4)");
    assert_eq!(refusal("(?P<ré>a)"), "group names are ASCII only: \"ré\" (at byte 4)");
    assert_eq!(refusal("(?ii)a"), "repeated flag 'i' (at byte 3)");
    assert_eq!(refusal("(?i-i)a"), "repeated flag 'i' (at byte 4)");
}

#[wasm_bindgen_test(unsupported = test)]
fn group_names_are_ascii_words_dots_and_brackets() {
    assert!(matches("(?P<_a.b[0]>x)(?<Z9>y)", "xy"));
}

#[wasm_bindgen_test(unsupported = test)]
fn huge_or_deep_patterns_are_refused_not_crashed_on() {
    assert!(refusal("(a{1000}){1000}").starts_with("pattern too large"));
    assert!(refusal(&"(".repeat(10_000)).starts_with("groups nested more than 50 deep"));
    let nested = |open: &str, depth: usize, inner: &str| format!("{}{inner}{}", open.repeat(depth), ")".repeat(depth));
    assert!(matches(&nested("(", 50, "a"), "a"));
    assert!(matches(&nested("(?:", 50, "a"), "a"));
    assert!(refusal(&nested("(?:", 51, "a")).starts_with("groups nested more than 50 deep"));
    // Each group that captures, repetition, alternation and sequence is a level, as to `regex-lite`.
    assert_eq!(
        refusal(&nested("(", 50, "ab")),
        "pattern nested more than 50 levels deep (at byte 0)"
    );
    let texts = ["a", "ab", "b", ""];
    for pattern in [
        nested("(", 50, "a"),
        nested("(", 51, "a"),
        nested("(", 49, "ab"),
        nested("(", 50, "ab"),
        nested("(", 24, "a|b"),
        nested("(", 25, "a|b"),
        nested("(?:", 50, "ab"),
        nested("(?:", 50, "a*"),
        nested("(?:", 51, "a"),
        nested("(?:a|", 25, "b"),
        nested("(?:a|", 26, "b"),
        nested("(a|", 16, "b"),
        nested("(a|", 17, "b"),
        nested("(a*", 16, "b"),
        nested("(a*", 17, "b"),
    ] {
        if let Some(disagreement) = super::reference::disagreement(&pattern, false, &texts) {
            panic!("{disagreement:?}");
        }
    }
}

/// The classic exponential case for backtracking engines takes linear time here.
#[wasm_bindgen_test(unsupported = test)]
fn nested_repetitions_do_not_backtrack() {
    let text = format!("{}b", "a".repeat(5_000));
    assert!(!matches("(a*)*c", &text));
    assert!(!matches("(a|aa)+c", &text));
}

#[wasm_bindgen_test(unsupported = test)]
fn answers_as_regex_lite_on_the_config_regexes_in_the_docs() {
    let cases = [
        ("/orders/[0-9]+", "/orders/17"),
        ("/users/[a-z]+", "/users/bob"),
        ("x-(tenant|shard)-override", "x-shard-override"),
        ("x-.*-bin", "x-grpc-bin"),
        ("x-trace-[0-9]+", "x-trace-x"),
        (r"/api/v[12]/(orders|users)/\d+(/items)?", "/api/v2/users/7/items"),
    ];
    for (pattern, text) in cases {
        for case_insensitive in [false, true] {
            let ours = Regex::whole(pattern, case_insensitive).map(|r| r.is_match(text)).ok();
            assert_eq!(ours, reference(pattern, case_insensitive, text), "{pattern} on {text}");
        }
    }
}

/// `regex-lite` against this engine on random patterns (proptest does not build for wasm).
#[cfg(not(target_family = "wasm"))]
mod properties {
    use proptest::prelude::*;

    use super::super::reference::disagreement;

    /// Pieces from which the random patterns are built: every construct the parser knows, and
    /// some it refuses.
    const PIECES: &[&str] = &[
        "a",
        "b",
        "A",
        "-",
        "/",
        ".",
        "é",
        "*",
        "+",
        "?",
        "*?",
        "{2}",
        "{1,3}",
        "{0,}",
        "|",
        "(",
        ")",
        "(?:",
        "(?i)",
        "(?-i)",
        "(?i:",
        "(?P<n>",
        "(?<n>",
        "(?m)",
        "(?s)",
        "(?x)",
        " ",
        "#",
        "\n",
        "[",
        "]",
        "^",
        "$",
        "[a-c]",
        "[^a]",
        "[]",
        "[-a]",
        "[a-]",
        r"\d",
        r"\w",
        r"\s",
        r"\D",
        r"\W",
        r"\S",
        r"\b",
        r"\<",
        r"\>",
        r"\B",
        r"\A",
        r"\z",
        r"\.",
        r"\/",
        r"\-",
        r"\x41",
        r"\u{e9}",
        r"\n",
        "[[:alpha:]]",
        "[[:^digit:]]",
        r"[\d_]",
        r"[\w-]",
        "{",
        "}",
        ",",
        "\\",
        "&&",
        "--",
    ];

    fn text_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('a'),
                Just('b'),
                Just('A'),
                Just('B'),
                Just('-'),
                Just('/'),
                Just('1'),
                Just(' '),
                Just('\n'),
                Just('é'),
                Just('_')
            ],
            0..8,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Where `regex-lite` accepts a pattern, it is accepted here with the same answers (or refused
        /// for one of the reasons in `reference::STRICTER`); where it refuses one, so does this engine.
        #[test]
        fn answers_as_regex_lite(
            pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..7),
            texts in proptest::collection::vec(text_strategy(), 1..6),
            case_insensitive in any::<bool>(),
        ) {
            let pattern: String = pieces.concat();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            if let Some(disagreement) = disagreement(&pattern, case_insensitive, &texts) {
                prop_assert!(false, "{:?}", disagreement);
            }
        }
    }
}
