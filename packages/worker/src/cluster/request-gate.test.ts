import assert from 'node:assert/strict';
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
    const gate = new RequestGate();
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

  it('a decision answered within the call is never in flight: a fence right after is at once', () => {
    const gate = new RequestGate();
    const service: DecisionService = {
      evaluate: (ref, _request, done) => done(decided(String(ref))),
      decide: () => assert.fail('not used'),
    };
    gate.decisions(service).evaluate('p', {}, () => undefined);
    let fenced = 0;
    gate.fence(() => fenced++);
    assert.equal(fenced, 1);
  });

  it('says fenced only once the decisions in flight have answered', () => {
    const gate = new RequestGate();
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
    const gate = new RequestGate();
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
});
