#!/usr/bin/env python3
"""Tests of the architecture check (tools/archcheck.py): it fails on what it is there to catch.

Run: python3 tools/test_archcheck.py
"""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import archcheck  # noqa: E402


def tree(files: dict[str, str]) -> str:
    """A throwaway src/ with these files (path -> text)."""
    root = tempfile.mkdtemp(prefix="archcheck-")
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
    return root


CLEAN = {
    "lib.rs": "pub mod domain;\npub mod db;\npub mod service;\npub mod http;\n",
    "domain/mod.rs": "pub struct User;\n",
    "db/mod.rs": "use crate::domain::User;\npub mod users;\n",
    "db/users.rs": "use super::*;\nuse crate::domain::{self, User};\n",
    "service/mod.rs": "use crate::db::{users, self};\nuse crate::domain::User;\n",
    "http/mod.rs": "use crate::service;\nfn f() { crate::db::users::x(); }\n",
}


class Check(unittest.TestCase):
    def test_a_tree_that_follows_the_layers_has_no_finding(self):
        self.assertEqual(archcheck.findings(tree(CLEAN)), [])

    def test_a_planted_upward_import_is_found(self):
        files = dict(CLEAN)
        files["db/users.rs"] += "use crate::service::{run, other::{a, b}};\n"
        # Service imports db/users, so the planted line also closes a circle.
        self.assertEqual(
            archcheck.findings(tree(files)),
            ["circle db/users service", "upward db/users -> service"],
        )

    def test_an_inline_upward_path_is_found(self):
        files = dict(CLEAN)
        files["domain/mod.rs"] += "fn f() { crate::http::serve(); }\n"
        self.assertIn("upward domain -> http", archcheck.findings(tree(files)))

    def test_a_circle_within_one_layer_is_found(self):
        files = dict(CLEAN)
        files["db/mod.rs"] += "pub mod sessions;\n"
        files["db/sessions.rs"] = "use super::users::x;\n"
        files["db/users.rs"] += "use crate::db::sessions::y;\n"
        self.assertEqual(archcheck.findings(tree(files)), ["circle db/sessions db/users"])

    def test_a_module_in_no_layer_is_found(self):
        files = dict(CLEAN)
        files["gadgets.rs"] = "use crate::domain::User;\n"
        self.assertEqual(archcheck.findings(tree(files)), ["unplaced gadgets"])

    def test_config_may_import_only_domain(self):
        files = dict(CLEAN)
        files["lib.rs"] += "pub mod config;\npub mod limits;\n"
        files["limits/mod.rs"] = "use crate::domain::User;\npub struct Quota;\n"
        files["config/mod.rs"] = "use crate::domain::User;\nmod raw;\n"
        files["config/raw.rs"] = "use super::*;\nuse crate::config::Config;\n"
        self.assertEqual(archcheck.findings(tree(files)), [], "domain and its own files")
        # A room of its own layer is not an upward import, yet config may not reach it.
        files["config/raw.rs"] += "use crate::limits::Quota;\n"
        self.assertEqual(archcheck.findings(tree(files)), ["narrow config/raw -> limits"])

    def test_strings_comments_and_test_modules_are_not_imports(self):
        files = dict(CLEAN)
        files["db/users.rs"] += (
            'const URL: &str = "sqlite://x"; // crate::service::a\n'
            'const S: &str = "crate::http::b";\n'
            "/* use crate::service; */\n"
            "#[cfg(test)]\nmod tests {\n    use crate::service::x;\n    fn t() { if true { crate::http::y(); } }\n}\n"
        )
        self.assertEqual(archcheck.findings(tree(files)), [])

    def test_the_baseline_excuses_only_what_it_lists_and_must_shrink(self):
        files = dict(CLEAN)
        files["db/users.rs"] += "use crate::service::run;\n"
        src = tree(files)
        baseline = os.path.join(src, "baseline.txt")
        script = os.path.join(HERE, "archcheck.py")

        def run():
            return subprocess.run(
                [sys.executable, script, src, "--baseline", baseline],
                capture_output=True, text=True,
            )

        self.assertEqual(run().returncode, 1, "no baseline: the upward import fails")
        with open(baseline, "w", encoding="utf-8") as f:
            f.write("# known\ncircle db/users service\nupward db/users -> service\n")
        self.assertEqual(run().returncode, 0, run().stdout)
        files["db/users.rs"] = CLEAN["db/users.rs"]
        with open(os.path.join(src, "db/users.rs"), "w", encoding="utf-8") as f:
            f.write(CLEAN["db/users.rs"])
        res = run()
        self.assertEqual(res.returncode, 1, "a fixed entry left in the baseline fails")
        self.assertIn("GONE upward db/users -> service", res.stdout)
        self.assertIn("GONE circle db/users service", res.stdout)

    def test_the_repository_holds_to_its_baseline(self):
        res = subprocess.run(
            [sys.executable, os.path.join(HERE, "archcheck.py")], capture_output=True, text=True
        )
        self.assertEqual(res.returncode, 0, res.stdout)


if __name__ == "__main__":
    unittest.main()
