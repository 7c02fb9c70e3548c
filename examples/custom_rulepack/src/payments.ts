export function charge(customer: string, amount: string, currency: string, idempotencyKey: string, note: string): number {
  console.log('charging', customer);
  const cents = parseFloat(amount);
  return cents;
}

export const refund = (id: string, reason: string) => {
  // eslint-disable-next-line no-console
  console.log('refund', id, reason);
  return true;
};
