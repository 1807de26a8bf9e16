// Waits for a promise at most a while: stops that depend on an unreachable service stay bounded.

/**
 * Resolves true once `p` settles (fulfilled or rejected), or false after `ms` if it has not;
 * `p` is left running either way.
 */
export async function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true, // settled is settled: the caller only asks whether it is over
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
