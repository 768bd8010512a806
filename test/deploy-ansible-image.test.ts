// The Ansible role's image options: pve_exporter_container_auto_update (AutoUpdate= of the
// Quadlet unit, and whether the update timer is enabled) and pve_exporter_container_image_archive
// (a `podman save` archive copied to the host and loaded as the service user before the start).
// Rendered with tests/render.yml and run with tests/stubbed.yml against the stub commands, as in
// test/deploy-ansible.test.ts (a separate file so each stays within the per-file timeout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { requireTool } from './helpers/tools.ts';
import {
  scratch,
  HINT,
  ME,
  MY_GROUP,
  ONE_MODULE,
  out,
  render,
  unitAsObject,
  stubbedWorld,
  runStubbed,
  takeCalls,
} from './helpers/ansible-role.ts';
test('AutoUpdate= follows pve_exporter_container_auto_update (registry, local, off) and an archive defaults it to local', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const autoUpdate = (vars: Record<string, unknown>): string[] | undefined => {
    const r = render({ pve_exporter_pve_targets: ONE_MODULE, ...vars });
    assert.equal(r.result.status, 0, out(r.result));
    return unitAsObject(readFileSync(r.quadlet, 'utf8')).Container!.AutoUpdate;
  };
  assert.deepEqual(autoUpdate({}), ['registry']);
  assert.deepEqual(autoUpdate({ pve_exporter_container_auto_update: 'local' }), ['local']);
  assert.equal(autoUpdate({ pve_exporter_container_auto_update: '' }), undefined);
  const archive = path.join(scratch, 'archive-for-render.tar');
  writeFileSync(archive, 'image: localhost/pve-exporter:dev\n');
  assert.deepEqual(autoUpdate({ pve_exporter_container_image: 'localhost/pve-exporter:dev', pve_exporter_container_image_archive: archive }), ['local']);
  assert.deepEqual(
    autoUpdate({ pve_exporter_container_image_archive: archive, pve_exporter_container_auto_update: '' }),
    undefined,
  );

  const bad = render({ pve_exporter_pve_targets: ONE_MODULE, pve_exporter_container_auto_update: 'daily' });
  assert.notEqual(bad.result.status, 0);
  assert.match(out(bad.result), /pve_exporter_container_auto_update must be one of: registry, local|pve_exporter_container_auto_update must be registry, local or empty/);
  const missing = render({ pve_exporter_pve_targets: ONE_MODULE, pve_exporter_container_image_archive: path.join(scratch, 'no-such.tar') });
  assert.notEqual(missing.result.status, 0);
  assert.match(out(missing.result), /no-such\.tar\\?" is not a file/);
});

test('install from an image archive: copied, loaded as the service user before the start, not reloaded when unchanged', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  if (MY_GROUP !== ME.username) return t.skip(`the test user's primary group (${MY_GROUP}) is not named like the user`);
  const world = stubbedWorld();
  // The stub's podman load reads the image name from the archive's first line.
  const archive = path.join(world.root, 'controller-image.tar');
  writeFileSync(archive, 'image: localhost/pve-exporter:dev\n');
  const vars = {
    pve_exporter_pve_targets: ONE_MODULE,
    pve_exporter_health_check: false,
    pve_exporter_container_image: 'localhost/pve-exporter:dev',
    pve_exporter_container_image_archive: archive,
  };
  const r = runStubbed(world, vars);
  assert.equal(r.status, 0, out(r));
  const copy = path.join(world.home, '.local/share/pve-exporter/image.tar');
  assert.equal(readFileSync(copy, 'utf8'), readFileSync(archive, 'utf8'));
  assert.equal(statSync(copy).mode & 0o777, 0o600);
  const calls = takeCalls(world).filter((c) => !/^(useradd|usermod|loginctl)/.test(c));
  // Load first, then the reload of the new unit and the start; the timer (AutoUpdate=local) too.
  assert.deepEqual(calls, [
    `podman load --input ${copy} [unit=present config=present]`,
    'systemctl --user daemon-reload [unit=present config=present]',
    'systemctl --user start pve-exporter.service [unit=present config=present]',
    'systemctl --user enable podman-auto-update.timer [unit=present config=present]',
    'systemctl --user start podman-auto-update.timer [unit=present config=present]',
  ]);
  const unit = unitAsObject(readFileSync(path.join(world.home, '.config/containers/systemd/pve-exporter.container'), 'utf8'));
  assert.deepEqual(unit.Container!.Image, ['localhost/pve-exporter:dev']);
  assert.deepEqual(unit.Container!.AutoUpdate, ['local']);

  // Unchanged archive, image present: nothing is loaded or restarted.
  const again = runStubbed(world, vars);
  assert.equal(again.status, 0, out(again));
  assert.match(again.stdout, /localhost\s+: ok=\d+\s+changed=0\s/);
  assert.deepEqual(takeCalls(world), []);

  // A new archive is loaded again and restarts the service.
  writeFileSync(archive, 'image: localhost/pve-exporter:dev\n# rebuilt\n');
  const rebuilt = runStubbed(world, vars);
  assert.equal(rebuilt.status, 0, out(rebuilt));
  assert.deepEqual(takeCalls(world), [
    `podman load --input ${copy} [unit=present config=present]`,
    'systemctl --user restart pve-exporter.service [unit=present config=present]',
  ]);

  // An archive holding another image than pve_exporter_container_image fails, saying what to set
  // (on a fresh host, where the configured image is not there from an earlier load).
  const fresh = stubbedWorld();
  const other = path.join(fresh.root, 'other-image.tar');
  writeFileSync(other, 'image: localhost/something-else:1\n');
  const wrong = runStubbed(fresh, { ...vars, pve_exporter_container_image_archive: other });
  assert.notEqual(wrong.status, 0);
  assert.match(out(wrong), /image localhost\/pve-exporter:dev is not in the service user's storage: set\s+pve_exporter_container_image/);
  assert.equal(takeCalls(fresh).filter((c) => c.includes('start pve-exporter.service')).length, 0, 'started without its image');
});

test('pve_exporter_container_auto_update empty: AutoUpdate= absent and the update timer left alone', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  if (MY_GROUP !== ME.username) return t.skip(`the test user's primary group (${MY_GROUP}) is not named like the user`);
  const world = stubbedWorld();
  const r = runStubbed(world, { pve_exporter_pve_targets: ONE_MODULE, pve_exporter_health_check: false, pve_exporter_container_auto_update: '' });
  assert.equal(r.status, 0, out(r));
  const calls = takeCalls(world);
  assert.ok(calls.includes('systemctl --user start pve-exporter.service [unit=present config=present]'), calls.join('\n'));
  assert.equal(calls.filter((c) => c.includes('podman-auto-update')).length, 0, calls.join('\n'));
});
