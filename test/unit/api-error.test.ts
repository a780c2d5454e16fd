import { expect } from 'chai';
import { apiError, describeApiError, isTooManyRequests, retryAfterMs } from '../../src/k8s/api-error.js';

// The shape client-node 1.x throws: ApiException with a numeric code and the Status body as a string.
const exception = (code: number, reason: string, message: string) => ({
  code,
  body: JSON.stringify({ kind: 'Status', status: 'Failure', reason, message, code }),
  message: `HTTP-Code: ${code}`,
});

describe('apiError', () => {
  for (const [code, kind] of [
    [409, 'conflict'],
    [422, 'invalid'],
    [400, 'invalid'],
    [404, 'notFound'],
    [403, 'forbidden'],
    [429, 'transient'],
    [500, 'transient'],
    [503, 'transient'],
  ] as const) {
    it(`classifies ${code} as ${kind}`, () => {
      expect(apiError(exception(code, 'R', 'm')).kind).to.equal(kind);
    });
  }

  it("keeps the server's reason and message", () => {
    const e = apiError(exception(409, 'Conflict', 'the object has been modified'));
    expect(e).to.deep.equal({
      kind: 'conflict',
      code: 409,
      reason: 'Conflict',
      message: 'the object has been modified',
    });
  });

  it('treats a network error (no status code) as transient', () => {
    const e = apiError(
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }),
    );
    expect(e.kind).to.equal('transient');
    expect(e.message).to.contain('ECONNREFUSED');
  });

  it('says a request cut by its timeout timed out, and counts it transient', () => {
    const aborted = Object.assign(new Error('The user aborted a request.'), { name: 'AbortError' });
    expect(apiError(aborted)).to.deep.equal({
      kind: 'transient',
      code: 0,
      reason: 'Timeout',
      message: 'no answer within the request timeout',
    });
  });

  it('describes an error with what was being done', () => {
    expect(describeApiError(exception(422, 'Invalid', 'spec.x: bad'), 'installing CRD y').message).to.equal(
      'installing CRD y: 422 Invalid: spec.x: bad',
    );
  });
});

describe('retryAfterMs', () => {
  const tooMany = (headers: Record<string, string>, details?: object) => ({
    code: 429,
    headers,
    body: JSON.stringify({ kind: 'Status', reason: 'TooManyRequests', code: 429, details }),
  });

  it("reads a 429's Retry-After header in seconds, whatever its case, before the body's details", () => {
    expect(retryAfterMs(tooMany({ 'retry-after': '1' }, { retryAfterSeconds: 7 }))).to.equal(1000);
    expect(retryAfterMs(tooMany({ 'Retry-After': '3' }))).to.equal(3000);
  });

  it("falls back to the Status body's details.retryAfterSeconds, and to undefined when neither says", () => {
    expect(retryAfterMs(tooMany({}, { retryAfterSeconds: 2 }))).to.equal(2000);
    expect(retryAfterMs(tooMany({ 'retry-after': 'Wed, 21 Oct 2026 07:28:00 GMT' }))).to.equal(undefined);
    expect(retryAfterMs(tooMany({ 'retry-after': '' }))).to.equal(undefined);
    expect(retryAfterMs(tooMany({}))).to.equal(undefined);
  });

  it('is undefined for anything but a 429, and isTooManyRequests knows a watch error by its statusCode', () => {
    expect(retryAfterMs({ code: 503, headers: { 'retry-after': '1' } })).to.equal(undefined);
    expect(isTooManyRequests({ statusCode: 429 })).to.equal(true);
    expect(isTooManyRequests({ code: 429 })).to.equal(true);
    expect(isTooManyRequests({ statusCode: 500 })).to.equal(false);
    expect(isTooManyRequests(undefined)).to.equal(false);
  });
});
