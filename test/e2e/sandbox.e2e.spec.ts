import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { execute, ROOT, startStack, type Stack } from '../support/stack';

// These checks are about bubblewrap isolation; `npm test` and .ci/run install bubblewrap.
describe('process sandbox under bubblewrap', () => {
  let stack: Stack;
  let server: Server;
  let port = 0;
  let connections = 0;

  beforeAll(async () => {
    expect(spawnSync('sh', ['-c', 'command -v bwrap']).status).toBe(0);
    server = createServer((socket) => {
      connections++;
      socket.end('hello');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    stack = await startStack({ workers: 1, workerEnv: { SANDBOX_ISOLATION: 'bubblewrap' } });
  });
  afterAll(async () => {
    await stack?.stop();
    server?.close();
  });

  it('cannot open a socket to 127.0.0.1, and the worker is unharmed', async () => {
    const result = await execute(stack, 'python', `import socket\n\ndef main(args):\n    socket.create_connection(("127.0.0.1", ${port}), timeout=2)\n    return {"connected": True}\n`);
    expect(result.status).toBe('failed');
    expect(result.error!.code).toBe('CODE_EXECUTION_FAILED');
    expect(result.error!.type).toMatch(/ConnectionRefusedError|OSError|TimeoutError/);
    expect(connections).toBe(0);
    const after = await execute(stack, 'python', 'def main(args):\n    return {"ok": True}\n');
    expect(after).toMatchObject({ status: 'succeeded', output: { ok: true } });
  });

  it('cannot reach the network from Node either', async () => {
    const result = await execute(
      stack,
      'javascript',
      `const net = require('node:net');\nfunction main() { return new Promise((resolve, reject) => { const s = net.connect(${port}, '127.0.0.1', () => resolve({ connected: true })); s.on('error', reject); }); }`,
    );
    expect(result.status).toBe('failed');
    expect(result.error!.message).toMatch(/ECONNREFUSED|ENETUNREACH/);
    expect(connections).toBe(0);
  });

  it('cannot read outside its home', async () => {
    const result = await execute(stack, 'python', `def main(args):\n    with open("${ROOT}/package.json") as f:\n        return {"leak": f.read()}\n`);
    expect(result.status).toBe('failed');
    expect(result.error!.type).toMatch(/FileNotFoundError|PermissionError/);
    const secrets = await execute(stack, 'python', 'import os\n\ndef main(args):\n    return {"root": os.listdir("/root")}\n');
    expect(secrets.status).toBe('failed');
  });

  it('cannot write outside /home/user and /tmp', async () => {
    const result = await execute(stack, 'python', 'def main(args):\n    open("/usr/evil", "w").write("x")\n    return {}\n');
    expect(result.status).toBe('failed');
    expect(result.error!.type).toMatch(/OSError|PermissionError/);
  });
});
