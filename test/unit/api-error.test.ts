import { expect } from 'chai';
import { apiError, describeApiError } from '../../src/k8s/api-error.js';

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
