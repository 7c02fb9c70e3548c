0const retries = 5;
const label = 'slow';
