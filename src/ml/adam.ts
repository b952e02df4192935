import type * as TF from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

/**
 * Adam whose state is keyed by variable name, with a step count per variable (as PyTorch keeps
 * it). tfjs's own Adam keys its moments by position in the gradient list, which breaks as soon
 * as steps update different variables: multi-task training updates one task's head per step.
 */
export class Adam {
  private readonly state = new Map<string, { m: TF.Tensor; v: TF.Tensor; t: number }>();

  constructor(
    private readonly tf: Tf,
    private readonly lr: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {}

  apply(vars: Map<string, TF.Variable>, grads: Record<string, TF.Tensor>): void {
    const { tf } = this;
    for (const [name, g] of Object.entries(grads)) {
      const variable = vars.get(name)!;
      const s = this.state.get(name) ?? { m: tf.zerosLike(g), v: tf.zerosLike(g), t: 0 };
      s.t++;
      const [m, v] = tf.tidy(() => [tf.add(tf.mul(s.m, this.beta1), tf.mul(g, 1 - this.beta1)), tf.add(tf.mul(s.v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2))]);
      const lrT = (this.lr * Math.sqrt(1 - this.beta2 ** s.t)) / (1 - this.beta1 ** s.t);
      tf.tidy(() => variable.assign(tf.sub(variable, tf.div(tf.mul(m!, lrT), tf.add(tf.sqrt(v!), this.eps)))));
      s.m.dispose();
      s.v.dispose();
      this.state.set(name, { m: m!, v: v!, t: s.t });
    }
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
  }
}
