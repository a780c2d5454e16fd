// Query templates: every variable of SPEC §2, unknown variables as errors, and values that cannot escape.
import { expect } from 'chai';
import {
  escapePromQLString,
  escapeRegex,
  isPromQLDuration,
  queryVariables,
  renderQuery,
  validateQuery,
  type TemplateResult,
  type TemplateValues,
} from '../../src/analysis/template.js';

const values: TemplateValues = {
  namespace: 'bookstore',
  name: 'bookstore',
  service: 'bookstore.bookstore.svc.cluster.local',
  stable: 'bookstore-v1',
  canary: 'bookstore-v2',
  interval: '30s',
  variables: { direction: 'inbound', code: '5.*' },
};

function rendered(result: TemplateResult<string>): string {
  if (!result.ok) throw new Error(`expected a rendered query, got: ${result.error.message}`);
  return result.value;
}

function failed<T>(result: TemplateResult<T>) {
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(result.value)}`);
  return result.error;
}

describe('query template', () => {
  it('renders every built-in variable, with or without spaces inside the braces', () => {
    const q =
      'x{ns="{{ namespace }}",n="{{name}}",svc="{{  service  }}",s="{{stable }}",c="{{ canary}}",t="{{ target }}"}[{{ interval }}]';
    expect(rendered(renderQuery(q, values))).to.equal(
      'x{ns="bookstore",n="bookstore",svc="bookstore.bookstore.svc.cluster.local",s="bookstore-v1",c="bookstore-v2",t="bookstore-v2"}[30s]',
    );
  });

  it('renders the SPEC request-success-rate query', () => {
    const q =
      '(sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}",response_code!~"5.*"}[{{ interval }}])) or vector(0))' +
      ' / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}"}[{{ interval }}])) * 100';
    expect(rendered(renderQuery(q, values))).to.equal(
      '(sum(rate(osm_request_total{destination_namespace="bookstore",destination_name="bookstore-v2",response_code!~"5.*"}[30s])) or vector(0))' +
        ' / sum(rate(osm_request_total{destination_namespace="bookstore",destination_name="bookstore-v2"}[30s])) * 100',
    );
  });

  it('renders {{ variables.KEY }} from templateVariables', () => {
    const q = 'x{direction="{{ variables.direction }}",code="{{variables.code}}"}';
    expect(rendered(renderQuery(q, values))).to.equal('x{direction="inbound",code="5.*"}');
  });

  it('refuses an unknown built-in, naming the variable and the metric', () => {
    const error = failed(renderQuery('x{a="{{ canry }}"}', values, 'request-success-rate'));
    expect(error.kind).to.equal('unknown-variable');
    expect(error.variable).to.equal('canry');
    expect(error.metric).to.equal('request-success-rate');
    expect(error.message).to.include('"canry"').and.include('request-success-rate');
  });

  it('refuses a templateVariables key the metric does not define, never rendering an empty string', () => {
    const error = failed(renderQuery('x{a="{{ variables.missing }}"}', values, 'latency'));
    expect(error.kind).to.equal('unknown-variable');
    expect(error.message).to.include('"variables.missing"').and.include('latency');
    expect(error.message).to.include('variables.direction');
  });

  it('does not look variables up on the prototype', () => {
    expect(failed(renderQuery('x{a="{{ variables.toString }}"}', values)).kind).to.equal('unknown-variable');
  });

  for (const [query, says] of [
    ['x{a="{{ canary }"}', 'never closed'],
    ['x{a="{{ }}"}', 'not a template variable'],
    ['x{a="{{ canary | upper }}"}', 'not a template variable'],
    ['x{a="{{ .canary }}"}', 'not a template variable'],
  ] as const) {
    it(`refuses the malformed placeholder in ${query}`, () => {
      const error = failed(renderQuery(query, values, 'm'));
      expect(error.kind).to.equal('malformed');
      expect(error.message).to.include(says).and.include('metric "m"');
    });
  }

  it('does not expand placeholders inside values (one pass)', () => {
    const q = 'x{a="{{ variables.v }}"}';
    const out = rendered(renderQuery(q, { ...values, variables: { v: '{{ canary }}' } }));
    expect(out).to.equal('x{a="{{ canary }}"}');
  });

  describe('escaping', () => {
    const attack = 'x"} or vector(1) or {a="';

    it('keeps x"} or vector(1) or {a=" inside its double-quoted string', () => {
      const out = rendered(
        renderQuery('sum(x{a="{{ variables.v }}"})', { ...values, variables: { v: attack } }),
      );
      expect(out).to.equal('sum(x{a="x\\"} or vector(1) or {a=\\""})');
      expect(unquoteFirstString(out)).to.equal(attack);
    });

    it("keeps x'} or vector(1) or {a=' inside its single-quoted string", () => {
      const single = "x'} or vector(1) or {a='";
      const out = rendered(renderQuery("x{a='{{ variables.v }}'}", { ...values, variables: { v: single } }));
      expect(out).to.equal("x{a='x\\'} or vector(1) or {a=\\''}");
    });

    it('escapes only the enclosing quote, since PromQL rejects an escaped quote of the other kind', () => {
      expect(escapePromQLString(`a'b"c`, '"')).to.equal(`a'b\\"c`);
      expect(escapePromQLString(`a'b"c`, "'")).to.equal(`a\\'b"c`);
    });

    it('escapes backslashes, line breaks and other control characters', () => {
      expect(escapePromQLString('a\\"', '"')).to.equal('a\\\\\\"');
      expect(escapePromQLString('1\n2\r3\t4\u00005\u001b6\u007f7\u00858', '"')).to.equal(
        '1\\n2\\r3\\t4\\u00005\\u001b6\\u007f7\\u00858',
      );
    });

    it('a trailing backslash cannot escape the closing quote', () => {
      const out = rendered(renderQuery('x{a="{{ variables.v }}"}', { ...values, variables: { v: 'a\\' } }));
      expect(out).to.equal('x{a="a\\\\"}');
    });

    it('tracks the quotes around a placeholder past escaped quotes in the template', () => {
      const q = 'x{a="say \\"{{ variables.v }}\\"", b=\'{{ variables.v }}\'}';
      const out = rendered(renderQuery(q, { ...values, variables: { v: `"'` } }));
      expect(out).to.equal(`x{a="say \\"\\"'\\"", b='"\\''}`);
    });

    it('refuses a backtick in a `raw string`, which has no escapes', () => {
      const ok = rendered(renderQuery('x{a=`{{ variables.v }}`}', { ...values, variables: { v: 'a"b' } }));
      expect(ok).to.equal('x{a=`a"b`}');
      const error = failed(
        renderQuery('x{a=`{{ variables.v }}`}', { ...values, variables: { v: 'a` or vector(1) or `' } }),
      );
      expect(error.kind).to.equal('unsafe-value');
    });

    it('refuses a line break in a # comment, which would end it', () => {
      const q = 'x # for {{ variables.v }}\n';
      expect(rendered(renderQuery(q, { ...values, variables: { v: 'a b-c' } }))).to.equal('x # for a b-c\n');
      const error = failed(renderQuery(q, { ...values, variables: { v: 'a\nor vector(1)' } }));
      expect(error.kind).to.equal('unsafe-value');
    });

    it('allows a number, a duration or a name outside quotes, and nothing else', () => {
      const q = 'sum by ({{ variables.label }}) (rate(x[{{ variables.window }}])) > {{ variables.limit }}';
      const ok = { label: 'destination_name', window: '1m30s', limit: '-0.5e3' };
      expect(rendered(renderQuery(q, { ...values, variables: ok }))).to.equal(
        'sum by (destination_name) (rate(x[1m30s])) > -0.5e3',
      );
      for (const bad of ['1 or vector(1)', 'or', 'x)', '"a"', '1-1', '']) {
        const error = failed(renderQuery('x > {{ variables.v }}', { ...values, variables: { v: bad } }, 'm'));
        expect(error.kind, bad).to.equal('unsafe-value');
        expect(error.message).to.include('outside quotes').and.include('metric "m"');
      }
    });

    it('refuses a Kubernetes name outside quotes rather than pasting it bare', () => {
      expect(failed(renderQuery('x{a={{ canary }}}', values)).kind).to.equal('unsafe-value');
    });
  });

  describe('inside a regex matcher (=~, !~)', () => {
    /** Whether Prometheus's matcher (fully anchored, as Prometheus anchors it) would match `label`. */
    const matches = (query: string, label: string): boolean =>
      new RegExp(`^(?:${unquoteFirstString(query)})$`).test(label);

    it('escapes a value as a regex: the canary "web.v2" matches itself, never "webXv2"', () => {
      const q = 'sum(x{destination_name=~"{{ canary }}"})';
      const out = rendered(renderQuery(q, { ...values, canary: 'web.v2' }));
      expect(out).to.equal('sum(x{destination_name=~"web\\\\.v2"})');
      expect(matches(out, 'web.v2')).to.equal(true);
      expect(matches(out, 'webXv2')).to.equal(false);
    });

    it('makes | and .* in a value literal, in either quote and in !~', () => {
      for (const q of ['x{a!~"{{ variables.v }}"}', "x{a=~'{{ variables.v }}'}"]) {
        const out = rendered(renderQuery(q, { ...values, variables: { v: 'a|.*' } }));
        expect(unquoteFirstString(out), q).to.equal('a\\|\\.\\*');
        expect(matches(out, 'a|.*'), q).to.equal(true);
        for (const other of ['a', 'b', 'anything']) expect(matches(out, other), q).to.equal(false);
      }
    });

    it('escapes every RE2 metacharacter, backslash included, before the string escaping', () => {
      const meta = '\\.+*?()|[]{}^$';
      expect(escapeRegex(meta)).to.equal('\\\\\\.\\+\\*\\?\\(\\)\\|\\[\\]\\{\\}\\^\\$');
      const out = rendered(
        renderQuery('x{a=~"{{ variables.v }}"}', { ...values, variables: { v: `${meta}"` } }),
      );
      expect(unquoteFirstString(out)).to.equal(`${escapeRegex(meta)}"`);
      expect(matches(out, `${meta}"`)).to.equal(true);
    });

    it('sees the matcher across spaces, and in a `raw string` escapes the regex alone', () => {
      const spaced = rendered(renderQuery('x{a =~  "{{ canary }}"}', { ...values, canary: 'web.v2' }));
      expect(spaced).to.equal('x{a =~  "web\\\\.v2"}');
      const raw = rendered(renderQuery('x{a=~`{{ canary }}`}', { ...values, canary: 'web.v2' }));
      expect(raw).to.equal('x{a=~`web\\.v2`}');
    });

    it("keeps the template's own regex around the value", () => {
      const q = 'x{destination_name=~"{{ canary }}-.*"}';
      const out = rendered(renderQuery(q, { ...values, canary: 'web.v2' }));
      expect(matches(out, 'web.v2-7f9c')).to.equal(true);
      expect(matches(out, 'webXv2-7f9c')).to.equal(false);
    });

    it('escapes as before outside a regex matcher: =, !=, the next matcher, a function argument', () => {
      const q =
        'label_replace(x{a=~"{{ variables.v }}",b="{{ variables.v }}",c!="{{ variables.v }}"}, "d", "{{ variables.v }}", "e", ".*")';
      expect(rendered(renderQuery(q, { ...values, variables: { v: 'a.b' } }))).to.equal(
        'label_replace(x{a=~"a\\\\.b",b="a.b",c!="a.b"}, "d", "a.b", "e", ".*")',
      );
    });
  });

  describe('interval', () => {
    for (const ok of ['30s', '1m', '1m30s', '500ms', '2h', '1d', '1w', '1y']) {
      it(`accepts ${ok}`, () => {
        expect(isPromQLDuration(ok)).to.equal(true);
        expect(rendered(renderQuery('rate(x[{{ interval }}])', { ...values, interval: ok }))).to.equal(
          `rate(x[${ok}])`,
        );
      });
    }

    for (const bad of ['', '0s', '0', '1.5m', '30', '30s]) or vector(1', '30 s', '1s1m', '-1m', '30S']) {
      it(`refuses "${bad}"`, () => {
        const error = failed(renderQuery('rate(x[{{ interval }}])', { ...values, interval: bad }, 'm'));
        expect(error.kind).to.equal('invalid-interval');
        expect(error.message).to.include('PromQL duration').and.include('metric "m"');
      });
    }
  });

  describe('queryVariables', () => {
    it('lists the distinct variables in order of first use', () => {
      const q = 'a{x="{{ canary }}",y="{{ variables.k }}"}[{{interval}}] / b{x="{{canary}}"}';
      expect(queryVariables(q)).to.deep.equal({ ok: true, value: ['canary', 'variables.k', 'interval'] });
    });

    it('reports an unknown built-in with the metric', () => {
      const error = failed(queryVariables('a{x="{{ stabel }}"}', 'm'));
      expect(error.message).to.include('"stabel"').and.include('metric "m"');
    });
  });

  describe('validateQuery (spec validation, before a run)', () => {
    it('accepts a query whose variables are all known', () => {
      const q = 'a{x="{{ canary }}",y="{{ variables.k }}"}[{{ interval }}]';
      expect(validateQuery(q, { metric: 'm', variables: { k: 'v' } })).to.equal(undefined);
    });

    it('names a templateVariables key that is not defined', () => {
      const error = validateQuery('a{y="{{ variables.k }}"}', { metric: 'm', variables: { other: 'v' } });
      expect(error?.kind).to.equal('unknown-variable');
      expect(error?.message).to.include('"variables.k"').and.include('metric "m"');
    });

    it('names a templateVariables value that is unsafe where it is used', () => {
      const error = validateQuery('a > {{ variables.k }}', {
        metric: 'm',
        variables: { k: '1 or vector(1)' },
      });
      expect(error?.kind).to.equal('unsafe-value');
    });

    it('names a malformed placeholder', () => {
      expect(validateQuery('a{y="{{ canary"}')?.kind).to.equal('malformed');
    });
  });
});

/** Reads the first quoted PromQL string of `q` ("…" or '…') the way PromQL's lexer does, for round trips. */
function unquoteFirstString(q: string): string {
  const start = q.search(/["']/);
  const quote = q[start];
  let out = '';
  for (let i = start + 1; i < q.length; i++) {
    const ch = q[i];
    if (ch === quote) return out;
    if (ch === '\\') {
      i++;
      out += q[i];
    } else out += ch;
  }
  throw new Error('unterminated string');
}
