//! Selector strings as `kubectl -l` takes them, selector objects, and hostile strings.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
    Selector::parse(selector)
        .unwrap_or_else(|error| panic!("{selector}: {error}"))
        .matches(&labels(pairs))
}

#[test]
fn equality_operators_match() {
    assert!(matches("app=web", &[("app", "web")]));
    assert!(matches("app==web", &[("app", "web")]));
    assert!(!matches("app=web", &[("app", "api")]));
    assert!(!matches("app=web", &[]));
    assert!(matches("app!=web", &[("app", "api")]));
    assert!(
        matches("app!=web", &[]),
        "!= holds when the label is absent"
    );
    assert!(!matches("app!=web", &[("app", "web")]));
    assert!(matches("app=", &[("app", "")]));
}

#[test]
fn set_operators_match() {
    assert!(matches("tier in (frontend, edge)", &[("tier", "edge")]));
    assert!(!matches("tier in (frontend,edge)", &[("tier", "db")]));
    assert!(!matches("tier in (frontend)", &[]));
    assert!(matches("tier notin (db)", &[("tier", "edge")]));
    assert!(matches("tier notin (db)", &[]));
    assert!(!matches("tier notin (db)", &[("tier", "db")]));
    assert!(matches("tier", &[("tier", "")]));
    assert!(!matches("tier", &[]));
    assert!(matches("!tier", &[]));
    assert!(!matches("! tier", &[("tier", "x")]));
}

#[test]
fn requirements_are_conjunctive_and_spaces_are_free() {
    let selector = " app = web , tier in ( a , b ) , !canary , env!=prod ";
    assert!(matches(selector, &[("app", "web"), ("tier", "a")]));
    assert!(!matches(
        selector,
        &[("app", "web"), ("tier", "a"), ("canary", "1")]
    ));
    assert!(!matches(
        selector,
        &[("app", "web"), ("tier", "a"), ("env", "prod")]
    ));
    assert!(matches(
        "example.com/role=db",
        &[("example.com/role", "db")]
    ));
}

#[test]
fn empty_selector_matches_everything() {
    assert!(matches("", &[]));
    assert!(matches("   ", &[("a", "b")]));
    assert!(Selector::parse("").is_ok_and(|selector| selector.is_empty()));
}

#[test]
fn hostile_selectors_are_errors() {
    let cases = [
        (
            "a=b,",
            "expected a label key at character 5, found end of selector",
        ),
        (",", "expected a label key at character 1, found `,`"),
        ("a in b", "expected `(` at character 6, found `b`"),
        (
            "a in (b",
            "expected `,` or `)` at character 8, found end of selector",
        ),
        (
            "a in ((b))",
            "expected `,` or `)` at character 7, found `(`",
        ),
        (
            "a b",
            "expected `=`, `==`, `!=`, `in` or `notin` at character 3, found `b`",
        ),
        (
            "a=b=c",
            "expected `,` or end of selector at character 4, found `=`",
        ),
        ("a==", ""),
        (
            "!",
            "expected a label key at character 2, found end of selector",
        ),
        (
            "a=b)",
            "expected `,` or end of selector at character 4, found `)`",
        ),
        ("A=-x", "invalid label value `-x` for key `A`"),
        ("-a=b", "invalid label key `-a`"),
        ("é=x", "invalid label key `é`"),
        ("a=\u{0}", "invalid label value"),
    ];
    for (text, expected) in cases {
        match Selector::parse(text) {
            Ok(selector) if expected.is_empty() => {
                assert!(selector.matches(&labels(&[("a", "")])), "{text}");
            }
            Ok(selector) => panic!("{text:?} parsed as {selector:?}"),
            Err(error) => assert!(error.to_string().starts_with(expected), "{text:?}: {error}"),
        }
    }
    let long = "a,".repeat(MAX_SELECTOR_LENGTH);
    assert_eq!(
        Selector::parse(&long).map_err(|error| error.to_string()),
        Err(format!(
            "selector is {} characters long, more than 4096",
            long.len()
        ))
    );
    let nested = "a in ".to_owned() + &"(".repeat(1000);
    assert!(Selector::parse(&nested).is_err());
}

#[test]
fn label_selector_objects_compile_and_match() {
    let selector = LabelSelector {
        match_labels: labels(&[("app", "web")]),
        match_expressions: vec![
            LabelSelectorRequirement {
                key: "tier".into(),
                operator: SelectorOperator::In,
                values: vec!["a".into(), "b".into()],
            },
            LabelSelectorRequirement {
                key: "canary".into(),
                operator: SelectorOperator::DoesNotExist,
                values: vec![],
            },
            LabelSelectorRequirement {
                key: "zone".into(),
                operator: SelectorOperator::Exists,
                values: vec![],
            },
            LabelSelectorRequirement {
                key: "env".into(),
                operator: SelectorOperator::NotIn,
                values: vec!["prod".into()],
            },
        ],
    };
    assert!(selector.matches(&labels(&[("app", "web"), ("tier", "b"), ("zone", "1")])));
    assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "b")])));
    assert!(!selector.matches(&labels(&[
        ("app", "web"),
        ("tier", "b"),
        ("zone", "1"),
        ("canary", "y")
    ])));
    assert!(!selector.matches(&labels(&[
        ("app", "web"),
        ("tier", "b"),
        ("zone", "1"),
        ("env", "prod")
    ])));
}

#[test]
fn label_selector_objects_reject_bad_operands() {
    let missing = LabelSelector {
        match_expressions: vec![LabelSelectorRequirement {
            key: "a".into(),
            operator: SelectorOperator::In,
            values: vec![],
        }],
        ..LabelSelector::default()
    };
    assert_eq!(
        missing.to_selector().map_err(|error| error.to_string()),
        Err("operator In on key `a` needs at least one value".into())
    );
    assert!(!missing.matches(&labels(&[("a", "")])));
    let extra = LabelSelector {
        match_expressions: vec![LabelSelectorRequirement {
            key: "a".into(),
            operator: SelectorOperator::Exists,
            values: vec!["x".into()],
        }],
        ..LabelSelector::default()
    };
    assert_eq!(
        extra.to_selector().map_err(|error| error.to_string()),
        Err("operator Exists on key `a` takes no values".into())
    );
    let bad_key = LabelSelector {
        match_labels: labels(&[("bad key", "x")]),
        ..LabelSelector::default()
    };
    assert!(bad_key.to_selector().is_err());
}
