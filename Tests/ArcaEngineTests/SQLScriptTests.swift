@testable import ArcaEngine
import Testing

/// The lexer that cuts pg_restore's scripts into statements: a `;`, a
/// newline or a comment-like line inside a literal, an identifier, a
/// comment or a function body never ends a statement.
@Suite struct SQLScriptTests {
    func texts(_ script: String) throws -> [String] {
        try SQLScript(script).statements.map(\.text)
    }

    @Test func quotedTextKeepsItsSemicolons() throws {
        let script = """
            SET standard_conforming_strings = on;
            CREATE INDEX "i;
            DROP ROLE x; --" ON public.t (a);
            COMMENT ON TABLE public.t IS 'it''s;
            -- Name: x; Type: INDEX; Schema: public; Owner: y
            DROP TABLE z;';
            CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;
            CREATE FUNCTION g() RETURNS text LANGUAGE plpgsql AS $body$ BEGIN RETURN '$$;'; END; $body$;
            SELECT E'a\\';b', U&"d;\\0041", $1;
            /* a comment; /* nested; */ still; */ ALTER TABLE "a""b" ADD CONSTRAINT c CHECK (x <> ';');
            CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));
            """
        let statements = try texts(script)
        #expect(statements.count == 8, "\(statements)")
        #expect(statements[1].hasPrefix("CREATE INDEX \"i;\nDROP ROLE x; --\""))
        #expect(statements[2].hasSuffix("DROP TABLE z;';"))
        #expect(statements[5] == "SELECT E'a\\';b', U&\"d;\\0041\", $1;")
        #expect(statements[6].hasPrefix("ALTER TABLE"))
        #expect(statements[7].hasSuffix("VALUES (2));"))
    }

    @Test func sqlStandardFunctionBodies() throws {
        let statements = try texts("""
            CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a; SELECT CASE WHEN a > 0 THEN 1 END; END;
            CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;
            SELECT 1;
            """)
        #expect(statements.count == 3, "\(statements)")
        #expect(statements[0].hasSuffix("END; END;"))
    }

    @Test func backslashesFollowTheStringSetting() throws {
        // With standard_conforming_strings off, \' does not end a literal.
        let off = try texts("SET standard_conforming_strings = off;\nSELECT 'a\\';b';\nSELECT 2;")
        #expect(off == ["SET standard_conforming_strings = off;", "SELECT 'a\\';b';", "SELECT 2;"])
        // With it on (pg_dump's default), a backslash is an ordinary character.
        let on = try texts("SELECT 'a\\';SELECT 2;")
        #expect(on == ["SELECT 'a\\';", "SELECT 2;"])
    }

    @Test func metaCommands() throws {
        let statements = try texts("\\restrict abc123\nSET x = 1;\nSELECT '\n\\restrict kept\n';\n\\unrestrict abc123\n")
        #expect(statements == ["SET x = 1;", "SELECT '\n\\restrict kept\n';"])
        #expect(throws: SQLScript.LexError.metaCommand("\\!", line: 2)) { try SQLScript("SELECT 1;\n\\! rm -rf /\n") }
        #expect(throws: SQLScript.LexError.self) { try SQLScript("SELECT 1 \\gexec\n") }
    }

    @Test func unterminatedTextIsAnError() {
        #expect(throws: SQLScript.LexError.unterminated("a string literal", line: 1)) { try SQLScript("SELECT 'abc;") }
        #expect(throws: SQLScript.LexError.unterminated("a quoted identifier", line: 2)) { try SQLScript("SELECT 1;\nSELECT \"abc;") }
        #expect(throws: SQLScript.LexError.unterminated("a dollar-quoted string", line: 1)) { try SQLScript("SELECT $x$ abc $y$;") }
        #expect(throws: SQLScript.LexError.unterminated("a comment", line: 1)) { try SQLScript("/* /* */ SELECT 1;") }
    }

    /// The streamed lexer, fed a script cut at every byte (in two pieces, and
    /// in pieces of one byte), finds exactly the statements of the whole,
    /// and the same errors with the same line numbers.
    @Test func streamedScriptsCutAnywhereLexTheSame() throws {
        let scripts = [
            "\\restrict abc123\nSET standard_conforming_strings = off;\nSELECT 'a\\';b';\n-- a comment; with\nSELECT $f$ x; $f$;\n"
                + "/* c; /* d; */ */ CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
                + "SELECT E'\\';', U&\"d;\", \"q\"\"\";\nSELECT 2\n\\unrestrict abc123\n",
            "SELECT 1;\nSELECT 'abc;\n",
            "SELECT 1;\n-- the last one has no semicolon\nSELECT 2\n",
            "SELECT 1;\n\\! rm -rf /\n",
        ]
        for script in scripts {
            let whole = Result { try SQLScript(script).statements }
            let bytes = Array(script.utf8)
            var cuts = (0...bytes.count).map { [bytes[..<$0], bytes[$0...]] }
            cuts.append(bytes.map { [$0][...] })
            for pieces in cuts {
                var stream = SQLScript.Stream()
                var statements: [SQLScript.Statement] = []
                let streamed = Result {
                    for piece in pieces { try stream.feed(piece) { statements.append($0) } }
                    try stream.finish { statements.append($0) }
                    return statements
                }
                switch (whole, streamed) {
                case (.success(let expected), .success(let found)): #expect(found == expected, "\(pieces.map(\.count))")
                case (.failure(let expected), .failure(let found)): #expect("\(found)" == "\(expected)", "\(pieces.map(\.count))")
                default: Issue.record("\(script): \(whole) but streamed \(streamed) with pieces \(pieces.map(\.count))")
                }
            }
        }
    }

    @Test func postDataIsSplitByStatementKind() throws {
        let script = try SQLScript("""
            SET statement_timeout = 0;
            SELECT pg_catalog.set_config('search_path', '', false);
            CREATE INDEX first ON public.t (b);
            SET default_tablespace = '';
            CREATE INDEX "x;
            -- Name: y; Type: FK CONSTRAINT; Schema: public; Owner: z
            " ON public.t USING btree (a);
            ALTER TABLE ONLY public."t;
            -- Name: k" ADD CONSTRAINT "t;pkey" PRIMARY KEY (id);
            ALTER TABLE ONLY public.u ADD CONSTRAINT u_fk FOREIGN KEY (t) REFERENCES public.t(id);
            CREATE UNIQUE INDEX u_idx ON public.u USING btree (t);
            COMMENT ON INDEX public."x;" IS 'ADD CONSTRAINT c PRIMARY KEY';
            """)
        let postData = PostDataScript(script.statements)
        #expect(postData.header.count == 2)
        #expect(postData.parallel.count == 4)
        // Each build carries the settings in force where it stood.
        #expect(postData.parallel[0] == "CREATE INDEX first ON public.t (b);")
        #expect(postData.parallel.dropFirst().allSatisfy { $0.hasPrefix("SET default_tablespace = '';\n") })
        #expect(postData.serial.map(\.text).map { $0.prefix(12) } == ["SET default_", "ALTER TABLE ", "COMMENT ON I"])
    }
}
