/*
 * The TypeScript type of the values a JSON Schema accepts, for the part of JSON Schema that stage
 * parameters use (type, enum, const, anyOf/oneOf, items, properties, required, default,
 * additionalProperties). A schema written once, `as const` or inferred as a const type parameter,
 * then types the parameters a stage receives: a property that is required or has a default (the
 * validator fills defaults in before a stage runs) is always there, any other may be absent.
 */

type Simple<T> = T extends 'string'
  ? string
  : T extends 'integer' | 'number'
    ? number
    : T extends 'boolean'
      ? boolean
      : T extends 'null'
        ? null
        : T extends 'array'
          ? unknown[]
          : T extends 'object'
            ? Record<string, unknown>
            : unknown;

type Needed<S> = S extends { readonly required: readonly (infer R)[] } ? R : never;
type Defaulted<P> = { [K in keyof P]: P[K] extends { readonly default: unknown } ? K : never }[keyof P];
type Flat<T> = { [K in keyof T]: T[K] };

type ObjectFrom<P, S> = Flat<
  { -readonly [K in keyof P as K extends Needed<S> | Defaulted<P> ? K : never]: FromSchema<P[K]> } & {
    -readonly [K in keyof P as K extends Needed<S> | Defaulted<P> ? never : K]?: FromSchema<P[K]>;
  }
>;

export type FromSchema<S> = S extends { readonly enum: readonly (infer E)[] }
  ? E
  : S extends { readonly const: infer C }
    ? C
    : S extends { readonly anyOf: readonly (infer A)[] }
      ? FromSchema<A>
      : S extends { readonly oneOf: readonly (infer A)[] }
        ? FromSchema<A>
        : S extends { readonly type: 'array'; readonly items: infer I }
          ? FromSchema<I>[]
          : S extends { readonly type: 'object'; readonly properties: infer P }
            ? ObjectFrom<P, S>
            : S extends { readonly type: 'object'; readonly additionalProperties: infer V extends object }
              ? Record<string, FromSchema<V>>
              : S extends { readonly type: infer T }
                ? T extends readonly (infer U)[]
                  ? Simple<U>
                  : Simple<T>
                : unknown;
