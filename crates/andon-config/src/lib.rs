#[cfg(test)]
mod scratch {
    #[test]
    fn markers() {
        let src = "a: 1\njobs:\n  - name: x\n    run: 'y z'\n  - {name: q, run: \"r\"}\nb: |\n  lit\n";
        let mut p = yaml_rust2::parser::Parser::new_from_str(src);
        loop {
            let (ev, m) = p.next_token().unwrap();
            println!("{:?} line={} col={} idx={}", ev, m.line(), m.col(), m.index());
            if ev == yaml_rust2::parser::Event::StreamEnd { break; }
        }
        for bad in ["a: b: c\n", "a:\n\tb: 1\n", "a: [1, 2\n", "a: 'x\n", "- a\nb: 1\n", "a: 1\n---\nb: 2\n"] {
            let mut p = yaml_rust2::parser::Parser::new_from_str(bad);
            loop {
                match p.next_token() {
                    Ok((ev, m)) => { println!("  {:?} {}:{}", ev, m.line(), m.col()); if ev == yaml_rust2::parser::Event::StreamEnd { break; } }
                    Err(e) => { println!("{bad:?} -> {}:{} {}", e.marker().line(), e.marker().col(), e.info()); break; }
                }
            }
        }
    }
}
