0// second version of the comment
export const answer = 42;
