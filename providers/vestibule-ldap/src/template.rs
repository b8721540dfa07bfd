//! `{name}` placeholders in filters and DN templates, filled in one pass so that a value can never introduce a
//! placeholder of its own (a login name of `{dn}` stays literal text).

/// Replaces each `{name}` by its value. Values must already be escaped for where they go. An unknown
/// placeholder or an unclosed `{` is an error, so configuration typos are caught by `check`.
pub(crate) fn expand(template: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "has a `{` without a closing `}`".to_owned())?;
        let name = &after[..close];
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("unknown placeholder {{{name}}}"))?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_and_errors() {
        assert_eq!(
            expand(
                "(&(member={dn})(uid={username}))",
                &[("dn", "{username}"), ("username", "a")]
            ),
            Ok("(&(member={username})(uid=a))".to_owned())
        );
        assert!(expand("(uid={user})", &[("username", "a")]).is_err());
        assert!(expand("(uid={username)", &[("username", "a")]).is_err());
    }
}
