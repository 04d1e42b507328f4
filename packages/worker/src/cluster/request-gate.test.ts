import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { DecisionOutcome, DecisionService } from '../gateway/decision-service.js';
import { RequestGate } from './request-gate.js';

/** A decision service whose answers the test releases by hand (a decision waiting on its JWKS). */
function pendingService() {
  const waiting: Array<(o: DecisionOutcome) => void> = [];
  const service: DecisionService = {
    evaluate: (_ref, _request, done) => waiting.push(done),
    decide: () => assert.fail('not used'),
  };
  return { service, waiting };
}

const decided = (policyId: string): DecisionOutcome => ({ kind: 'refused', status: 404, error: policyId });

describe('RequestGate (a serving child holds requests while its cluster switches sets)', () => {
  it('fences at once when nothing is in flight; holds new requests until release, then runs them in order', () => {
    const gate = new RequestGate(() => undefined);
    const ran: string[] = [];
    const service: DecisionService = {
      evaluate: (ref, _request, done) => {
        ran.push(String(ref));
        done(decided(String(ref)));
      },
      decide: () => assert.fail('not used'),
    };
    const gated = gate.decisions(service);
    let fenced = 0;
    gate.fence(() => fenced++);
    assert.equal(fenced, 1);
    const answers: string[] = [];
    gated.evaluate('a', {}, (o) => answers.push((o as { error: string }).error));
    gated.evaluate('b', {}, (o) => answers.push((o as { error: string }).error));
    assert.deepEqual(ran, [], 'held while fenced');
    gate.release();
    assert.deepEqual(ran, ['a', 'b']);
    assert.deepEqual(answers, ['a', 'b']);
  });

  it('says fenced only once the decisions in flight have answered', () => {
    const gate = new RequestGate(() => undefined);
    const { service, waiting } = pendingService();
    const gated = gate.decisions(service);
    const answers: DecisionOutcome[] = [];
    gated.evaluate('p', {}, (o) => answers.push(o));
    let fenced = 0;
    gate.fence(() => fenced++);
    assert.equal(fenced, 0, 'a decision is in flight');
    waiting[0]?.(decided('p'));
    assert.equal(fenced, 1);
    assert.equal(answers.length, 1);
  });

  it('cuts off a decision still in flight past the fence wait: it answers no decision (503), and its late answer is dropped', async () => {
    const gate = new RequestGate(() => undefined);
    const { service, waiting } = pendingService();
    const answers: DecisionOutcome[] = [];
    gate.decisions(service).evaluate('p', {}, (o) => answers.push(o));
    await new Promise<void>((resolve) => gate.fence(resolve));
    assert.deepEqual(
      answers.map((o) => [o.kind, o.kind === 'refused' ? o.status : 0]),
      [['refused', 503]],
    );
    waiting[0]?.(decided('p'));
    assert.equal(answers.length, 1, 'the late answer is not delivered');
  });

  it('holds HTTP requests too, and answers GET /metrics itself without holding it', async () => {
    const server = createServer((_req, res) => res.end('decided'));
    const gate = new RequestGate((res) => res.end('aggregate'));
    gate.http(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const get = (path: string) =>
      new Promise<string>((resolve, reject) => {
        request({ port, host: '127.0.0.1', path, agent: false }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString('utf8');
          });
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
    try {
      await new Promise<void>((resolve) => gate.fence(resolve));
      let held: string | undefined;
      const decision = get('/v1/decide').then((t) => {
        held = t;
        return t;
      });
      assert.equal(await get('/metrics'), 'aggregate', 'metrics answered while fenced');
      assert.equal(held, undefined, 'the decision is held');
      gate.release();
      assert.equal(await decision, 'decided');
    } finally {
      server.close();
    }
  });
});
