import assert from 'node:assert/strict';
import { test } from 'node:test';
import { medianPhases, parseXenLaunchOutput, xlPhases } from './xen-launch.js';

test("the script's lines are read back; xl's phases come from the stamped log's landmarks", () => {
  const out = [
    'OURS builder {"ms":100,"phases":[{"name":"populate memory","ms":60},{"name":"map","ms":40}]}',
    'XL builder 300',
    'noise',
    'OURS builder {"ms":120,"phases":[{"name":"populate memory","ms":80},{"name":"map","ms":40}]}',
    'XL builder 250',
    'OURS first_byte {"ms":200,"phases":[]}',
    'XL first_byte 400',
    'XLLOG 1000000 (start)',
    'XLLOG 1500000 Parsing config from /tmp/bench-xl.cfg',
    'XLLOG 1600000 libxl: detail: libxl_create.c:662:libxl__domain_make: passthrough: disabled',
    'XLLOG 1700000 domainbuilder: detail: xc_dom_boot_mem_init: called',
    'XLLOG 1750000 domainbuilder: detail: xc_dom_build_image: called',
    'XLLOG 2000000 (exit)',
    'RESULT 28',
  ].join('\n');
  const runs = parseXenLaunchOutput(out);
  assert.deepEqual(
    runs.ours.builder.map((r) => r.ms),
    [100, 120],
  );
  assert.deepEqual(runs.xl, { builder: [300, 250], first_byte: [400] });
  assert.equal(runs.dom0UsedMb, 28);
  assert.deepEqual(medianPhases(runs.ours.builder.map((r) => r.phases)), [
    { name: 'populate memory', ms: 70 },
    { name: 'map', ms: 40 },
  ]);
  // Missing landmarks merge into the next phase found.
  assert.deepEqual(xlPhases(runs.xlLog), [
    { name: 'start xl (exec, libraries)', ms: 500 },
    { name: 'parse config, start libxl', ms: 100 },
    { name: 'parse kernel, plan', ms: 100 },
    { name: 'populate memory', ms: 50 },
    { name: 'wait for xenconsoled, exit', ms: 250 },
  ]);
});
