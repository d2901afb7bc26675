console.log("MOONWIRE-TEST-JS");
