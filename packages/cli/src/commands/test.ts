import { access } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { PolicyDecision, PolicyHost } from '@apx/core';
import type { Mismatch, TestSuite } from '@apx/policy';
import { type CommandSpec, flagBool, flagString, UsageError } from '../command.js';
import type { CliContext } from '../context.js';
import { readInput } from '../io.js';
import { findFiles, pathKind, shownPath } from '../policy-files.js';
import { loadHost, verifyUnsigned } from '../policy-source.js';

interface CaseResult {
  name: string;
  line: number;
  passed: boolean;
  mismatches: Mismatch[];
  faults: string[];
  /** Absent when the policy did not compile. */
  decision?: PolicyDecision;
}

interface FileResult {
  file: string;
  policy: string;
  /** The policy's compile problems: every case of the file fails. */
  problems?: string[];
  cases: CaseResult[];
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** The test files the command-line paths name (directories searched recursively); usage errors name the path. */
async function testFiles(ctx: CliContext, paths: string[], suffix: string): Promise<string[]> {
  const files = new Set<string>();
  for (const p of paths) {
    const abs = resolve(ctx.cwd, p);
    const kind = await pathKind(abs);
    if (kind === 'missing') throw new UsageError(`${p} does not exist`);
    if (kind === 'dir') {
      const found = await findFiles(abs, (name) => name.endsWith(suffix));
      if (found.length === 0) throw new UsageError(`no test files (*${suffix}) under ${p}`);
      for (const f of found) files.add(f);
    } else if (abs.endsWith(suffix)) {
      files.add(abs);
    } else if (/\.ya?ml$/.test(abs)) {
      // A policy: its tests beside it.
      const beside = abs.replace(/\.ya?ml$/, suffix);
      if (!(await exists(beside))) throw new UsageError(`no tests for ${p}: expected ${shownPath(ctx, beside)} beside it`);
      files.add(beside);
    } else {
      throw new UsageError(`${p} is neither a directory, a policy (.yaml) nor a test file (*${suffix})`);
    }
  }
  return [...files].sort();
}

/** The policy a test file tests: `policy:` relative to it, else its name without `.test`. */
async function policyOf(testFile: string, suite: TestSuite, suffix: string): Promise<string> {
  if (suite.policy !== undefined) return resolve(dirname(testFile), suite.policy);
  const base = testFile.slice(0, -suffix.length);
  for (const ext of ['.yaml', '.yml']) if (await exists(base + ext)) return base + ext;
  return `${base}.yaml`;
}

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));

function renderText(ctx: CliContext, results: FileResult[]): void {
  const out: string[] = [];
  for (const f of results) {
    if (f.problems) {
      out.push(`FAIL ${f.file}: policy ${f.policy} does not compile (${f.cases.length} cases not run)`);
      for (const p of f.problems) out.push(`     ${p}`);
      continue;
    }
    for (const c of f.cases) {
      out.push(`${c.passed ? 'PASS' : 'FAIL'} ${f.file}:${c.line} ${c.name}`);
      if (c.passed) continue;
      for (const m of c.mismatches) out.push(`     ${m.field}: expected ${show(m.expected)}, got ${show(m.actual)}`);
      for (const fault of c.faults) out.push(`     policy fault: ${fault}`);
      const d = c.decision;
      if (d) out.push(`     decision: ${d.effect} ${d.status} "${d.reason}" (route ${show(d.route)}, rule ${show(d.rule)})`);
    }
  }
  ctx.stdout.write(out.length > 0 ? `${out.join('\n')}\n` : '');
}

function summary(results: FileResult[]): { passed: number; failed: number; total: number; files: number } {
  let passed = 0;
  let failed = 0;
  for (const f of results)
    for (const c of f.cases) {
      if (c.passed && !f.problems) passed++;
      else failed++;
    }
  return { passed, failed, total: passed + failed, files: results.length };
}

export const testCommand: CommandSpec = {
  name: 'test',
  summary: 'Run policy unit tests (*.test.yaml: requests and expected decisions) against policy sources.',
  usage: '[--run REGEX] [--json] [PATH...]',
  details: `Each PATH is a test file (*.test.yaml), a policy (its tests are the .test.yaml beside it)
or a directory searched recursively for *.test.yaml (default: the current directory). A test
file names cases: a request and the decision fields it expects (allow or effect, status,
reason, route, rule, identity, headers, rateLimits); only the fields given are checked. The
policy (policy:, else the file beside the test with .test removed) is compiled in memory and
run unsigned with the workers' runtime; nothing is written or signed. See "Testing policies"
in docs/policy-language.md.

Prints PASS or FAIL per case, what differs on failure, and a summary line. Exit 0 when every
case passes, 1 when one fails (or a policy does not compile), 2 for a usage mistake or a test
file that cannot be read (one line naming the file, line, case and field).`,
  flags: [
    {
      name: 'run',
      type: 'string',
      value: 'REGEX',
      short: 'r',
      description: 'Only the cases whose name matches this regular expression (JavaScript syntax).',
    },
    {
      name: 'json',
      type: 'boolean',
      description: 'Print one JSON document on stdout (every file, case, mismatch and decision) instead of text.',
    },
  ],
  positionals: { min: 0, max: Number.MAX_SAFE_INTEGER, names: 'PATH' },
  async run(ctx, args) {
    const json = flagBool(args, 'json');
    const runText = flagString(args, 'run');
    let run: RegExp | undefined;
    try {
      run = runText === undefined ? undefined : new RegExp(runText);
    } catch {
      throw new UsageError(`--run ${runText} is not a valid regular expression`);
    }
    const policyLib = await import('@apx/policy');
    const { compilePolicy, compareDecision, parseTestSuite, PolicyError, TEST_SUFFIX, TestFileError } = policyLib;
    const files = await testFiles(ctx, args.positionals.length > 0 ? args.positionals : ['.'], TEST_SUFFIX);

    // Read every test file first: a broken one stops the run before anything is compiled.
    const suites: { file: string; suite: TestSuite; policy: string }[] = [];
    const broken: string[] = [];
    for (const file of files) {
      const shown = shownPath(ctx, file);
      try {
        const text = await readInput(ctx, file, 'test file', 'pass a readable *.test.yaml file');
        const suite = parseTestSuite(text.toString('utf8'), shown);
        const policy = await policyOf(file, suite, TEST_SUFFIX);
        if (!(await exists(policy)))
          throw new TestFileError(
            `${shown}: policy ${shownPath(ctx, policy)} not found; put the test beside its policy or name it in policy:`,
          );
        if (run) suite.cases = suite.cases.filter((c) => run.test(c.name));
        if (suite.cases.length > 0) suites.push({ file, suite, policy });
      } catch (err) {
        if (!(err instanceof TestFileError)) throw err;
        broken.push(err.message);
      }
    }
    if (broken.length > 0) {
      for (const line of broken) ctx.stderr.write(`ERROR: ${line}\n`);
      if (json) ctx.stdout.write(`${JSON.stringify({ ok: false, errors: broken }, null, 2)}\n`);
      return 2;
    }

    if (suites.length === 0) throw new UsageError(`no test case matches --run ${runText}`);

    const compiled = new Map<string, { host: PolicyHost; faults: string[] } | { problems: string[] }>();
    const results: FileResult[] = [];
    for (const { file, suite, policy } of suites) {
      const policyShown = shownPath(ctx, policy);
      let loaded = compiled.get(policy);
      if (!loaded) {
        try {
          const source = await readInput(ctx, policy, 'policy file', 'pass the path of an apx/v1 policy YAML file');
          const c = await compilePolicy(source.toString('utf8'), policyShown);
          const faults: string[] = [];
          const host = loadHost(verifyUnsigned(c.wasm, { policyId: c.meta.policy, version: c.meta.version }), (f) =>
            faults.push(`${f.kind}: ${f.message}`),
          );
          loaded = { host, faults };
        } catch (err) {
          if (!(err instanceof PolicyError)) throw err;
          loaded = { problems: err.lines() };
        }
        compiled.set(policy, loaded);
      }
      const result: FileResult = { file: shownPath(ctx, file), policy: policyShown, cases: [] };
      if ('problems' in loaded) {
        result.problems = loaded.problems;
        for (const c of suite.cases) result.cases.push({ name: c.name, line: c.line, passed: false, mismatches: [], faults: [] });
      } else {
        for (const c of suite.cases) {
          loaded.faults.length = 0;
          const decision = loaded.host.decide(c.request);
          const mismatches = compareDecision(c.expect, decision);
          const faults = [...loaded.faults];
          result.cases.push({ name: c.name, line: c.line, passed: mismatches.length === 0, mismatches, faults, decision });
        }
      }
      results.push(result);
    }

    const s = summary(results);
    const ok = s.failed === 0;
    if (json) {
      ctx.stdout.write(`${JSON.stringify({ ok, ...s, results }, null, 2)}\n`);
    } else {
      renderText(ctx, results);
      const files = `${s.files} file${s.files === 1 ? '' : 's'}`;
      ctx.stdout.write(
        ok
          ? `ok: ${s.passed} case${s.passed === 1 ? '' : 's'} passed (${files})\n`
          : `FAILED: ${s.failed} of ${s.total} cases failed (${files})\n`,
      );
    }
    return ok ? 0 : 1;
  },
};
