0function second(): number { return 2; }
function third(): number { return 3; }
function fourth(): number { return 4; }
function first(): number { return 1; }
