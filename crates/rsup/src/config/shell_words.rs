//! Splitting `args: "--port 80 --name 'a b'"` into words the way a POSIX
//! shell would, without expansion: quotes group, backslash escapes.

/// Splits `line` into words. Fails on an unterminated quote or a trailing
/// backslash, which a shell would also reject.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word can be empty but present (`''`), so track it separately.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        // Inside double quotes a backslash only escapes the
                        // characters that are special there.
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Err("ends with a lone backslash".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn plain_words() {
        assert_eq!(split("  --port  80 -v ").unwrap(), ["--port", "80", "-v"]);
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            split(r#"--name 'a b' --msg "say \"hi\"" x\ y --e=''"#).unwrap(),
            ["--name", "a b", "--msg", "say \"hi\"", "x y", "--e="]
        );
        assert_eq!(split(r#"key="v w""#).unwrap(), ["key=v w"]);
        assert_eq!(split("''").unwrap(), [""]);
    }

    #[test]
    fn unterminated() {
        assert!(split("'abc").is_err());
        assert!(split("\"abc").is_err());
        assert!(split("abc\\").is_err());
    }
}
