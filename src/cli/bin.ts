import { main } from "./main";
import { noteStartup } from "../eval/profile";

noteStartup();

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
