//! Splits a RouterOS command line into tokens (words, quoted strings, brackets, operators,
//! command separators), each with the line and column RouterOS would report in an error.
//!
//! Anything the simulator does not understand and that a real console would treat as script
//! syntax (`$variables`, `{blocks}`, `(expressions)`, comments) is a syntax error, so hostile
//! input can never be half-understood.

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// An unquoted run of characters (`/disk`, `print`, `pvc-1`, `*1F`, `10G`).
    Word(String),
    /// A `"quoted"` string, escapes resolved.
    Str(String),
    /// `[`
    LBrack,
    /// `]`
    RBrack,
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `~`
    Tilde,
    /// `;` or a line break.
    Sep,
}

/// A token and where it starts (1-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
}

/// Where the input stopped making sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub col: usize,
}

/// Characters that end an unquoted word.
fn ends_word(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '[' | ']' | '=' | ';' | '"' | '~' | '!' | '$' | '{' | '}' | '(' | ')' | '\\' | '#'
        )
}

/// Tokenizes `input`.
pub fn lex(input: &str) -> Result<Vec<Token>, LexError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let (mut line, mut col) = (1usize, 1usize);
    let mut i = 0usize;
    let err = |line, col| LexError { line, col };
    while let Some(&c) = chars.get(i) {
        let (tline, tcol) = (line, col);
        let single = |tok| Token {
            tok,
            line: tline,
            col: tcol,
        };
        match c {
            '\n' => {
                out.push(single(Tok::Sep));
                i += 1;
                line += 1;
                col = 1;
            }
            ' ' | '\t' | '\r' => {
                i += 1;
                col += 1;
            }
            ';' => {
                out.push(single(Tok::Sep));
                i += 1;
                col += 1;
            }
            '[' | ']' | '=' | '~' => {
                out.push(single(match c {
                    '[' => Tok::LBrack,
                    ']' => Tok::RBrack,
                    '=' => Tok::Eq,
                    _ => Tok::Tilde,
                }));
                i += 1;
                col += 1;
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(single(Tok::NotEq));
                    i += 2;
                    col += 2;
                } else {
                    return Err(err(line, col));
                }
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                col += 1;
                loop {
                    let Some(&q) = chars.get(i) else {
                        return Err(err(tline, tcol));
                    };
                    match q {
                        '"' => {
                            i += 1;
                            col += 1;
                            break;
                        }
                        '\\' => {
                            let Some(&e) = chars.get(i + 1) else {
                                return Err(err(line, col));
                            };
                            let (decoded, used) = match e {
                                '"' | '\\' | '$' | '?' => (e, 1),
                                'n' => ('\n', 1),
                                'r' => ('\r', 1),
                                't' => ('\t', 1),
                                '_' => (' ', 1),
                                'a' => ('\u{7}', 1),
                                'b' => ('\u{8}', 1),
                                'f' => ('\u{c}', 1),
                                'v' => ('\u{b}', 1),
                                h if h.is_ascii_hexdigit() => {
                                    let lo = chars.get(i + 2).copied().unwrap_or(' ');
                                    let hex: String = [h, lo].iter().collect();
                                    match u8::from_str_radix(&hex, 16) {
                                        Ok(b) => (char::from(b), 2),
                                        Err(_) => return Err(err(line, col)),
                                    }
                                }
                                _ => return Err(err(line, col)),
                            };
                            value.push(decoded);
                            i += 1 + used;
                            col += 1 + used;
                        }
                        '$' if chars.get(i + 1).is_some_and(|n| {
                            n.is_alphanumeric() || matches!(n, '_' | '(' | '[' | '{')
                        }) =>
                        {
                            // a variable or an expression: script syntax the simulator refuses
                            return Err(err(line, col));
                        }
                        '\n' => {
                            value.push('\n');
                            i += 1;
                            line += 1;
                            col = 1;
                        }
                        other => {
                            value.push(other);
                            i += 1;
                            col += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Str(value),
                    line: tline,
                    col: tcol,
                });
            }
            c if ends_word(c) || c.is_control() => return Err(err(line, col)),
            _ => {
                let mut word = String::new();
                while let Some(&w) = chars.get(i) {
                    if ends_word(w) {
                        break;
                    }
                    if w.is_control() {
                        return Err(err(line, col));
                    }
                    word.push(w);
                    i += 1;
                    col += 1;
                }
                out.push(Token {
                    tok: Tok::Word(word),
                    line: tline,
                    col: tcol,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.to_string())
    }

    #[test]
    fn words_operators_and_strings() {
        assert_eq!(
            toks(r#"/disk print detail where slot~"^pvc-""#),
            vec![
                w("/disk"),
                w("print"),
                w("detail"),
                w("where"),
                w("slot"),
                Tok::Tilde,
                Tok::Str("^pvc-".into())
            ]
        );
        assert_eq!(
            toks("/disk remove [find slot=a]; /file print"),
            vec![
                w("/disk"),
                w("remove"),
                Tok::LBrack,
                w("find"),
                w("slot"),
                Tok::Eq,
                w("a"),
                Tok::RBrack,
                Tok::Sep,
                w("/file"),
                w("print")
            ]
        );
        assert_eq!(toks("a!=b"), vec![w("a"), Tok::NotEq, w("b")]);
    }

    #[test]
    fn escapes_in_strings() {
        assert_eq!(
            toks(r#""a\"b\\c\$d\_e\41""#),
            vec![Tok::Str("a\"b\\c$d eA".into())]
        );
    }

    #[test]
    fn positions_are_one_based_columns() {
        let t = lex("/disk  frob\n:put x").unwrap();
        assert_eq!((t[0].line, t[0].col), (1, 1));
        assert_eq!((t[1].line, t[1].col), (1, 8));
        assert_eq!(t[2].tok, Tok::Sep);
        assert_eq!((t[3].line, t[3].col), (2, 1));
    }

    #[test]
    fn script_syntax_is_refused_with_a_position() {
        assert_eq!(lex("/disk print $x"), Err(LexError { line: 1, col: 13 }));
        assert_eq!(
            lex(r#"comment="$(reboot)""#),
            Err(LexError { line: 1, col: 10 })
        );
        assert_eq!(lex(r#"a="unterminated"#), Err(LexError { line: 1, col: 3 }));
        assert_eq!(lex("{ /system reboot }"), Err(LexError { line: 1, col: 1 }));
        assert_eq!(lex("a\u{1b}b"), Err(LexError { line: 1, col: 2 }));
        assert_eq!(lex("!x"), Err(LexError { line: 1, col: 1 }));
        assert_eq!(lex(r#""\q""#), Err(LexError { line: 1, col: 2 }));
        assert_eq!(lex(r#""$x""#), Err(LexError { line: 1, col: 2 }));
        // a `$` that cannot start a variable is an ordinary character (regex end anchors)
        assert_eq!(toks(r#""b$""#), vec![Tok::Str("b$".into())]);
    }
}
