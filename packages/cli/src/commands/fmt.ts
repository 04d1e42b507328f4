import { chmod, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type CommandSpec, flagBool, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { writeFileSet } from '../file-set.js';
import { readInput } from '../io.js';
import { findFiles, pathKind, shownPath } from '../policy-files.js';

/** A policy source: YAML whose top level says `apiVersion: apx/v1` (test files are not policies). */
const looksLikePolicy = (text: string) => /^apiVersion:\s*["']?apx\/v1["']?\s*(#.*)?$/m.test(text);
const isYaml = (name: string) => /\.ya?ml$/.test(name) && !name.endsWith('.test.yaml');

/** The policy files the paths name: files as given; directories searched for apx/v1 YAML. */
async function policyFiles(ctx: CliContext, paths: string[]): Promise<{ path: string; text: string }[]> {
  const out = new Map<string, string>();
  for (const p of paths) {
    const abs = resolve(ctx.cwd, p);
    const kind = await pathKind(abs);
    if (kind === 'missing') throw new UsageError(`${p} does not exist`);
    if (kind === 'file') {
      const text = (await readInput(ctx, abs, 'policy file', 'pass a readable apx/v1 policy')).toString('utf8');
      if (abs.endsWith('.test.yaml') || !looksLikePolicy(text))
        throw new UsageError(`${p} is not an apx/v1 policy (no top-level apiVersion: apx/v1); apx fmt formats policies only`);
      out.set(abs, text);
      continue;
    }
    let found = 0;
    for (const f of await findFiles(abs, isYaml)) {
      const text = (await readInput(ctx, f, 'policy file', 'pass a readable apx/v1 policy')).toString('utf8');
      if (!looksLikePolicy(text)) continue;
      out.set(f, text);
      found++;
    }
    if (found === 0) throw new UsageError(`no apx/v1 policies (*.yaml with apiVersion: apx/v1) under ${p}`);
  }
  return [...out.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, text]) => ({ path, text }));
}

export const fmtCommand: CommandSpec = {
  name: 'fmt',
  summary: 'Rewrite apx/v1 policy sources in the canonical layout (--check: list the ones that differ).',
  usage: '[--check] [PATH...]',
  details: `Each PATH is a policy file or a directory searched recursively for YAML files that say
apiVersion: apx/v1 (default: the current directory; *.test.yaml, node_modules, dist and dot
directories are skipped). The canonical layout: keys in the documented order (apiVersion,
kind, metadata, spec; inside spec: routes, auth, ip, rules, rateLimits, limits, headers,
default; and so on, as docs/policy-language.md lists them), 2-space indentation, flow
mappings as { a: 1 } and flow lists as [a, b], no line folding. Comments, quoting, flow or block style and blank lines are kept, and so is the
meaning (the source digest apx compile records does not change). Files are rewritten
all or none (Ctrl-C included), only when they change; formatting twice changes nothing.

--check writes nothing: it lists the files that differ on stdout and exits 1 when there is
one (0 when every file is canonical). A file that is not valid YAML: one line naming it,
exit 1.`,
  flags: [
    {
      name: 'check',
      type: 'boolean',
      description: 'Write nothing; list the files not in the canonical layout and exit 1 if any.',
    },
  ],
  positionals: { min: 0, max: Number.MAX_SAFE_INTEGER, names: 'PATH' },
  async run(ctx, args) {
    const check = flagBool(args, 'check');
    const { formatPolicySource, PolicyCheckError, PolicyError, PolicyErrorCode } = await import('@apx/policy');
    const files = await policyFiles(ctx, args.positionals.length > 0 ? args.positionals : ['.']);
    // Format everything in memory first: a file that does not parse stops the run before any write.
    const planned: { path: string; shown: string; formatted: string; changed: boolean }[] = [];
    let broken = 0;
    for (const { path, text } of files) {
      const shown = shownPath(ctx, path);
      try {
        const formatted = formatPolicySource(text, shown);
        planned.push({ path, shown, formatted, changed: formatted !== text });
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        for (const line of err.lines()) ctx.stderr.write(`${line}\n`);
        broken++;
      }
    }
    if (broken > 0) {
      throw new PolicyCheckError(
        PolicyErrorCode.YAML_SYNTAX,
        `${broken} file${broken === 1 ? '' : 's'} could not be formatted; nothing written`,
        {
          hint: 'fix the YAML first (apx compile reports every problem)',
        },
      );
    }
    const changed = planned.filter((p) => p.changed);
    if (check) {
      for (const p of changed) ctx.stdout.write(`${p.shown}\n`);
      if (changed.length > 0)
        info(
          ctx,
          `${changed.length} of ${planned.length} file${planned.length === 1 ? '' : 's'} not formatted; run apx fmt to fix`,
        );
      return changed.length > 0 ? 1 : 0;
    }
    // All or none, Ctrl-C included: every file is staged, then all are renamed into place.
    const modes = await Promise.all(changed.map(async (p) => (await stat(p.path)).mode & 0o777));
    await writeFileSet(
      ctx,
      changed.map((p) => ({ path: p.path, data: p.formatted })),
    );
    for (const [i, p] of changed.entries()) {
      // The new file keeps the old one's permissions.
      const mode = modes[i] as number;
      if (mode !== 0o644) await chmod(p.path, mode);
      ctx.stdout.write(`formatted ${p.shown}\n`);
    }
    info(ctx, `${planned.length} file${planned.length === 1 ? '' : 's'} checked, ${changed.length} rewritten`);
    return 0;
  },
};
